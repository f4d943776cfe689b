"""Reporting layer: paper tables, ablation grids, efficiency plots, statistics and the regression check.

Modules (one job each):
  published   -- which papers, where their verbatim tables live (results/published/)
  loading     -- read result files and published tables into uniform rows
  render      -- Markdown / CSV / LaTeX rendering of plain tables
  paper_table -- the papers' main tables with our measured rows appended
  ablation    -- pivot runs over model.args
  efficiency  -- accuracy beside throughput and memory (table + PNG)
  statistics  -- paired bootstrap, sign / McNemar tests; re-exports the engine's bootstrap CIs
                 (mmeval.bootstrap: the engine never imports this layer)
  check       -- the checkpoint regression gate behind `mmeval check`
  commands    -- click objects: `report` (group) and `check` (command)
"""

from mmeval.report.statistics import bootstrap_ci, mean_of

__all__ = ["bootstrap_ci", "mean_of"]
