"""Reporting layer: paper tables, ablation grids, efficiency plots, statistics and the regression check.

Modules (one job each):
  published     -- which papers and versions, where their verbatim tables live (results/published/)
  loading       -- read result files and published tables into uniform rows
  comparability -- what each paper's numbers were computed on; is a measured number comparable
  cells         -- table cells as data (value, interval, mark, footnote) for every renderer
  render        -- Markdown / CSV / LaTeX rendering of plain tables
  paper_table   -- the papers' main tables with our measured rows appended (Cobra: v4 default, v1)
  ablation      -- pivot runs over model.args; the papers' ablation tables beside our runs
  ranking       -- does a paper's ranking of configurations hold within our intervals
  efficiency  -- accuracy beside throughput and memory (table + PNG)
  html          -- one self-contained HTML page of all of the above, plus a sample browser (CSS/JS: html_assets)
  statistics  -- paired bootstrap, sign / McNemar tests; re-exports the engine's bootstrap CIs
                 (mmeval.bootstrap: the engine never imports this layer)
  check       -- the checkpoint regression gate behind `mmeval check`
  commands    -- click objects: `report` (group) and `check` (command)
"""

from mmeval.report.statistics import bootstrap_ci, mean_of

__all__ = ["bootstrap_ci", "mean_of"]
