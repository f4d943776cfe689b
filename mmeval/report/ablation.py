"""Ablation grids: pivot runs over their model arguments, as the papers' ablation tables do.

Rows are the distinct value combinations of the chosen axes (keys of ``model.args``, e.g.
encoder, mmc, scan); columns are metrics: a task name means that task's headline metric,
``task:metric`` a specific one.  Runs sharing an axis combination are merged into one row; where
two of them report the same column, the most recently created result wins (and a note says so).
The best value per column is marked (bold in Markdown/LaTeX); missing cells stay empty.

The papers' own ablation tables (VL-Mamba tables 2-5, Cobra v4 tables 5 and 7) are the second half:
``paper_ablation`` puts each published row beside our runs of the same configuration, matched axis
by axis, with intervals, comparability marks and, per column, whether the paper's ranking holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mmeval.errors import UnknownNameError
from mmeval.report.cells import Cell, Footnotes, measured_cell, published_cell
from mmeval.report.comparability import comparability, task_options, textvqa_prompt_order
from mmeval.report.loading import TaskResult, as_number, format_value, load_results
from mmeval.report.published import MAIN_TABLES, AblationSpec, load_ablation_spec, read_ablation_csv
from mmeval.report.ranking import RankEntry, RankingVerdict, ranking_verdict
from mmeval.report.render import RENDERERS, Table

MISSING_AXIS = "-"  # shown when a run's model.args lacks an axis


@dataclass
class Grid:
    axes: list[str]
    columns: list[str]
    keys: list[tuple[str, ...]]
    values: dict[tuple[tuple[str, ...], str], float] = field(default_factory=dict)
    runs: dict[tuple[tuple[str, ...], str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def best(self, higher_is_better: bool = True) -> set[tuple[int, int]]:
        """(row, column) positions holding the best value of each column (ties all marked)."""
        marks = set()
        for j, col in enumerate(self.columns):
            vals = [(i, self.values[(k, col)]) for i, k in enumerate(self.keys) if (k, col) in self.values]
            if not vals:
                continue
            target = (max if higher_is_better else min)(v for _, v in vals)
            marks |= {(i, j) for i, v in vals if round(v, 6) == round(target, 6)}
        return marks


def _column_of(col: str) -> tuple[str, str | None]:
    task, _, metric = col.partition(":")
    return task, (metric or None)


def build_grid(results: Iterable[TaskResult], axes: list[str], metrics: list[str] | None = None,
               protocol: str | None = None) -> Grid:
    """Pivot task results into a grid keyed by the axes' values."""
    results = [r for r in results if protocol is None or r.protocol == protocol]
    if not metrics:
        metrics = sorted({r.task for r in results})
    grid = Grid(axes=list(axes), columns=list(metrics), keys=[])
    created: dict[tuple[tuple[str, ...], str], str] = {}
    keys = set()
    for r in results:
        args = r.model_args
        key = tuple(str(args[a]) if a in args else MISSING_AXIS for a in axes)
        used = False
        for col in metrics:
            task, metric = _column_of(col)
            if r.task != task:
                continue
            v = r.metric(metric)
            if v is None:
                continue
            used = True
            cell = (key, col)
            if cell in grid.values:
                winner = r.run if r.created >= created[cell] else grid.runs[cell]
                grid.notes.append(f"{'/'.join(key)} {col}: runs {grid.runs[cell]} and {r.run} both "
                                  f"report it; showing {winner} (most recent)")
                if r.created < created[cell]:
                    continue
            grid.values[cell], grid.runs[cell], created[cell] = v, r.run, r.created
        if used:
            keys.add(key)
    grid.keys = sorted(keys)
    return grid


def grid_table(grid: Grid, digits: int = 1, mark_best: bool = True) -> Table:
    header = [*grid.axes, *grid.columns]
    rows = []
    for k in grid.keys:
        rows.append([*k, *(format_value(grid.values.get((k, c)), digits) for c in grid.columns)])
    n_axes = len(grid.axes)
    bold = {(i, j + n_axes) for i, j in grid.best()} if mark_best else set()
    return Table(header=header, rows=rows, numeric=set(range(n_axes, len(header))), bold=bold,
                 notes=list(grid.notes))


def render_ablation(results_paths: str | Path | Iterable, axes: list[str], metrics: list[str] | None = None,
                    protocol: str | None = None) -> Table:
    return grid_table(build_grid(load_results(results_paths), axes, metrics, protocol))


# =========================================================================== the papers' ablation tables
# ``mmeval report ablation --paper vl-mamba|cobra``: each published ablation row, and beneath it the
# runs of the same configuration (matched axis by axis), with intervals, marks for cells that do not
# compare with the paper's number, and per column whether the paper's ranking holds.

#: The papers' names for a configuration -> our option values (model_adapters/vl_mamba.py: encoder=,
#: mmc=, scan=, llm=; model_adapters/cobra.py: projector=, llm=, model= presets).  Unlisted values are
#: spelled alike.
PAPER_NAMES: dict[str, dict[str, dict[str, str]]] = {
    "vl-mamba": {
        "encoder": {"clip-vit-l": "clip", "siglip-so": "siglip"},
        "llm": {"mamba-2.8b-pile": "mamba-2.8b"},  # state-spaces/mamba-2.8b is the Pile model
    },
    "cobra": {
        # Cobra's vision_backbone_id (cobra/conf/models.py; mmeval/models/vision_timm.py)
        "vision": {"dinov2+siglip-so": "dinosiglip-vit-so-384px", "siglip-so": "siglip-vit-so400m-384px"},
        # the projector kind without "fused-": the fused variant is the same projector over the two
        # towers' concatenated features (cobra+3b: fused-gelu-mlp, cobra-siglip+3b: gelu-mlp);
        # LDPv2 is Cobra's (fused-)ldpnet
        "projector": {"mlp": "gelu-mlp", "ldpv2": "ldpnet"},
    },
}
#: Cobra's training recipe per model id (cobra/conf/models.py): finetune epochs and whether an
#: alignment stage ran first ("no-align+" arch specifiers skip it).  Only cobra+3b was released.
COBRA_RECIPES: dict[str, tuple[str, str]] = {
    "cobra+3b": ("2", "no"), "cobra-base+3b": ("2", "no"), "cobra-siglip+3b": ("2", "no"),
    "cobra-ldpnet+3b": ("2", "no"), "cobra-one-epoch+3b": ("1", "no"),
}
#: Cobra Table 5 rows that change the recipe, not the architecture (the paper's text).
COBRA_RECIPE_AXES = {"finetune_epochs": ("1", "no"), "pre_alignment": ("2", "yes")}
NO_TASK = "no mmeval task"

#: Configuration columns shown beside the printed ones: Cobra's recipe, which its CSV leaves implicit.
RECIPE_COLUMNS = {"cobra": ("epochs", "pre_alignment")}
CONFIG_AXES = {"vl-mamba": ("encoder", "mmc", "scan", "llm"),
               "cobra": ("vision", "projector", "llm", "epochs", "pre_alignment")}


def paper_config(paper: str, axis: str, printed: dict[str, str]) -> dict[str, str] | None:
    """A published row's configuration in our option values; None when it is not one of our models'
    (e.g. Cobra Table 7's LLaVA v1.5 row).  Axes that do not apply are left out (an MLP connector has
    no scan)."""
    names = PAPER_NAMES[paper]

    def ours(axis_name: str) -> str:
        value = printed.get(axis_name, "")
        return names.get(axis_name, {}).get(value, value)

    if paper == "vl-mamba":
        want = {a: ours(a) for a in CONFIG_AXES[paper] if printed.get(a)}
        if want.get("mmc") == "mlp":
            want.pop("scan", None)
        return want or None
    if not printed.get("vision"):
        return None
    epochs, aligned = COBRA_RECIPE_AXES.get(axis, ("2", "no"))
    return {"vision": ours("vision"), "projector": ours("projector"), "llm": ours("llm"), "epochs": epochs,
            "pre_alignment": aligned}


def _cobra_preset(model_id: str) -> dict[str, str]:
    """MODEL_PRESETS[model_id] (imported lazily: it pulls in torch), for results without a model.config."""
    from mmeval.models.cobra import MODEL_PRESETS

    return dict(MODEL_PRESETS.get(model_id, {}))


def run_config(paper: str, result: TaskResult) -> dict[str, str | None]:
    """A run's configuration on the paper's axes: the resolved ``model.config`` the adapter records,
    else the ``--model-args`` (and, for Cobra, the ``model=`` preset).  None = not recorded."""
    cfg = result.model.get("config") or {}
    args = result.model_args
    if paper == "vl-mamba":
        out = {a: (cfg.get(a) or args.get(a)) for a in CONFIG_AXES[paper]}
        for a, names in PAPER_NAMES[paper].items():
            if out.get(a) is not None:
                out[a] = names.get(str(out[a]), str(out[a]))
        return out
    model_id = cfg.get("model_id") or args.get("model")
    needs_preset = not all(cfg.get(k) for k in ("vision_backbone_id", "arch_specifier", "llm_backbone_id"))
    preset = _cobra_preset(str(model_id)) if model_id and needs_preset else {}
    arch = args.get("projector") or cfg.get("arch_specifier") or preset.get("arch_specifier")
    llm = cfg.get("llm_backbone_id") or args.get("llm") or preset.get("llm_backbone_id")
    epochs, aligned = COBRA_RECIPES.get(str(model_id), (None, None))
    return {
        "vision": cfg.get("vision_backbone_id") or preset.get("vision_backbone_id"),
        "projector": str(arch).rsplit("+", 1)[-1].removeprefix("fused-") if arch else None,
        "llm": llm, "epochs": epochs, "pre_alignment": aligned,
    }


def matches(wanted: dict[str, str], got: dict[str, str | None]) -> bool:
    """Axis by axis: every axis the paper's row states equals the run's."""
    return all(got.get(axis) == value for axis, value in wanted.items())


def conditions(result: TaskResult) -> tuple | None:
    """What a value was computed on, for comparing two runs with each other (None: data not recorded)."""
    data = result.data.get("data")
    if not isinstance(data, dict):
        return None
    opts = task_options(result)
    return (result.protocol, data.get("version"), data.get("split"), data.get("questions"),
            tuple(sorted(opts.items())) if opts else None)


@dataclass
class AblationRow:
    """A published row ("paper") or the measured runs of its configuration ("measured")."""

    table: str
    axis: str
    source: str  # "paper" | "measured"
    config: dict[str, str]  # as printed (paper rows) or in our option values (measured rows)
    cells: dict[str, Cell]
    runs: dict[str, str] = field(default_factory=dict)  # column -> run the measured value comes from


@dataclass
class AblationTable:
    number: str
    description: str
    config_columns: list[str]
    columns: list[str]  # metric columns the paper fills in this table
    rows: list[AblationRow]
    verdicts: dict[str, RankingVerdict]
    footnotes: list[str]
    notes: list[str]


@dataclass
class PaperAblation:
    spec: AblationSpec
    tables: list[AblationTable]

    def caption(self, table: AblationTable) -> str:
        s = self.spec
        return f"{s.title} -- Table {table.number}: {table.description} (version {s.version}; {s.citation})"


def _column_results(spec: AblationSpec, col: str, results: list[TaskResult]) -> list[TaskResult]:
    task = spec.columns.get(col)
    bench = spec.benchmark(col) or ""
    out = [r for r in results if r.task == task and r.metric() is not None]
    if bench.startswith("textvqa_"):  # a prompt-order column (Cobra Table 7): keyed on the task options
        out = [r for r in out if textvqa_prompt_order(r) == bench.removeprefix("textvqa_")]
    return out


def _place(spec: AblationSpec, col: str, wanted: dict[str, str], results: list[TaskResult],
           configs: dict[int, dict]) -> tuple[TaskResult, tuple[bool, list[str]], int] | None:
    """The result shown for one paper row and column, its comparability, and how many matched: the
    comparable one first, then the paper's protocol, then the newest."""
    cands = [(r, comparability(spec.key, spec.version, spec.benchmark(col), r))
             for r in _column_results(spec, col, results) if matches(wanted, configs[id(r)])]
    if not cands:
        return None
    r, verdict = max(cands, key=lambda c: (c[1][0], c[0].protocol == spec.protocol, c[0].created))
    return r, verdict, len(cands)


def _paper_table(spec: AblationSpec, number: str, printed_rows: list[dict[str, str]], results: list[TaskResult],
                 configs: dict[int, dict], digits: int) -> AblationTable:
    rows_here = [r for r in printed_rows if r["table"] == number]
    columns = [c for c in spec.columns if any(r[c] for r in rows_here)]
    footnotes, notes = Footnotes(), []
    rows: list[AblationRow] = []
    entries: dict[str, list[RankEntry]] = {c: [] for c in columns}
    for rec in rows_here:
        printed = {c: rec[c] for c in spec.config_columns}
        label = rec["axis"] + ": " + " / ".join(v or "-" for v in printed.values())
        wanted = paper_config(spec.key, rec["axis"], printed)
        recipe = {a: (wanted or {}).get(a, "") for a in RECIPE_COLUMNS.get(spec.key, ())}
        rows.append(AblationRow(number, rec["axis"], "paper", {**printed, **recipe},
                                {c: published_cell(rec[c], as_number(rec[c])) for c in columns}))
        cells, runs = {}, {}
        for col in columns:
            placed = _place(spec, col, wanted, results, configs) if wanted and spec.columns.get(col) else None
            if placed is None:
                cells[col] = Cell(text="")
                entries[col].append(RankEntry(label, as_number(rec[col])))
                continue
            r, verdict, n_matched = placed
            if n_matched > 1:
                notes.append(f"Table {number}, {label}, {col}: {n_matched} runs match; showing {r.run}")
            cells[col] = measured_cell(r.metric(), r.ci(), verdict, footnotes, digits)
            runs[col] = r.run
            entries[col].append(RankEntry(label, as_number(rec[col]), r.metric(), r.ci(), conditions(r)))
        if runs:
            rows.append(AblationRow(number, rec["axis"], "measured", dict(wanted or {}), cells, runs))
    verdicts = {c: ranking_verdict(entries[c]) if spec.columns.get(c) else RankingVerdict(NO_TASK) for c in columns}
    return AblationTable(number, spec.tables[number], [*spec.config_columns, *RECIPE_COLUMNS.get(spec.key, ())],
                         columns, rows, verdicts, footnotes.texts, notes)


def paper_ablation(paper: str, results: str | Path | Iterable | None = None, tables: Iterable[str] | None = None,
                   published_dir: str | Path | None = None, digits: int = 1) -> PaperAblation:
    """The paper's ablation tables with our runs of each configuration, as data."""
    spec = load_ablation_spec(paper, published_dir)
    wanted_tables = [str(t) for t in tables] if tables else list(spec.tables)
    unknown = [t for t in wanted_tables if t not in spec.tables]
    if unknown:
        raise UnknownNameError(f"{spec.key} has no ablation table {', '.join(unknown)}; "
                               f"known: {', '.join(spec.tables)}")
    printed_rows = read_ablation_csv(spec, published_dir)
    loaded = load_results(results) if results is not None else []
    configs = {id(r): run_config(spec.key, r) for r in loaded}
    return PaperAblation(spec, [_paper_table(spec, n, printed_rows, loaded, configs, digits) for n in wanted_tables])


def _ablation_notes(pa: PaperAblation, table: AblationTable) -> list[str]:
    s = pa.spec
    axes = ", ".join(CONFIG_AXES[s.key])
    return [
        f"Paper rows: {s.source} ({s.citation}); cells as printed, empty = '-'.",
        *s.notes,
        f"Measured rows: runs whose configuration ({axes}; from the result's model.config, else its "
        "--model-args) equals the paper row's axis by axis; brackets: bootstrap 95% CI; "
        "a marked cell (†k) was not computed on the paper's data, split, protocol or prompt (footnote k).",
        "Ranking: per column, over every pair of measured configurations the paper ranks: 'holds' when "
        "our intervals are apart in the paper's order, 'reversed' when any pair is apart the other way, "
        "'not resolved by the intervals' otherwise.",
        *table.notes,
    ]


def ablation_display(pa: PaperAblation, table: AblationTable) -> Table:
    """Markdown/LaTeX form of one ablation table: paper row, measured row, ..., then the ranking row."""
    header = ["axis", *table.config_columns, "source", *table.columns, "runs"]
    first = 2 + len(table.config_columns)
    rows, marks, rules = [], {}, set()
    for i, r in enumerate(table.rows):
        config = [r.config.get(c) or "" for c in table.config_columns]
        cells = [r.axis, *config, "measured here" if r.source == "measured" else "paper"]
        for j, col in enumerate(table.columns):
            cell = r.cells[col]
            cells.append(cell.with_interval())
            if cell.mark:
                marks[(i, first + j)] = cell.mark
        rows.append(cells + [", ".join(sorted(set(r.runs.values())))])
    rules.add(len(rows))
    rows.append(["ranking", *([""] * len(table.config_columns)), "paper's order",
                 *(table.verdicts[c].detail for c in table.columns), ""])
    return Table(header=header, rows=rows, numeric=set(range(first, first + len(table.columns))),
                 rules_before=rules, caption=pa.caption(table), notes=_ablation_notes(pa, table), marks=marks,
                 footnotes=list(table.footnotes))


def ablation_csv(pa: PaperAblation) -> Table:
    """CSV form of all the paper's ablation tables: one row per paper/measured row, then one "ranking"
    row per table; per metric column its value, interval and footnote."""
    config_columns = list(dict.fromkeys(c for t in pa.tables for c in t.config_columns))
    columns = [c for c in pa.spec.columns if any(c in t.columns for t in pa.tables)]
    header = ["table", "axis", *config_columns, "source", "runs", "paper_version"]
    for c in columns:
        header += [c, f"{c}_ci95_lo", f"{c}_ci95_hi", f"{c}_note"]
    rows = []
    for t in pa.tables:
        for r in t.rows:
            row = [t.number, r.axis, *(r.config.get(c) or "" for c in config_columns),
                   "measured" if r.source == "measured" else "paper", " ".join(sorted(set(r.runs.values()))),
                   pa.spec.version]
            for c in columns:
                cell = r.cells.get(c, Cell(text=""))
                lo_hi = cell.interval if cell.text else None
                row += [cell.text, *([format_value(lo_hi[0]), format_value(lo_hi[1])] if lo_hi else ["", ""]),
                        cell.footnote]
            rows.append(row)
        row = [t.number, "ranking", *([""] * len(config_columns)), "ranking", "", pa.spec.version]
        for c in columns:
            row += [t.verdicts[c].detail if c in t.verdicts else "", "", "", ""]
        rows.append(row)
    return Table(header=header, rows=rows)


def ablation_output_stem(spec: AblationSpec) -> str:
    """vl_mamba_ablations, cobra_v4_ablations (the paper version in the name)."""
    return f"{MAIN_TABLES[spec.key][spec.version]}_ablations"


def render_paper_ablation(pa: PaperAblation) -> dict[str, str]:
    """{"md", "csv", "tex"}: Markdown and LaTeX one block per table, CSV all tables in one file."""
    displays = [ablation_display(pa, t) for t in pa.tables]
    return {"md": "\n".join(RENDERERS["md"](d) for d in displays), "csv": RENDERERS["csv"](ablation_csv(pa)),
            "tex": "\n".join(RENDERERS["tex"](d) for d in displays)}
