"""The `neurank` command: each command parses, builds Settings, calls one library function and prints."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from neurank.config import Settings, load_settings
from neurank.errors import IndexNotFoundError, NeurankError, StoreError, redact
from neurank.query.duo import load_duo
from neurank.query.rerank import load_reranker
from neurank.retrieval import DEFAULT_HYBRID_FUSION

if TYPE_CHECKING:
    from neurank.dashboards import SavedObjects
    from neurank.query.plan import PlanFusion
    from neurank.query.target import SearchTarget

app = typer.Typer(no_args_is_help=True,
                  help="Neural ranking for OpenSearch and Elasticsearch, with an embedded default store.")
models_app = typer.Typer(no_args_is_help=True, help="Bundled models: list, export to ONNX, quantize.")
index_app = typer.Typer(no_args_is_help=True, help="Inspect and manage indexes.")
dashboards_app = typer.Typer(no_args_is_help=True,
                             help="Saved objects that show an index in Kibana or OpenSearch Dashboards.")


console = Console(stderr=True)


class ExitCode(IntEnum):
    """What a command's exit status means (the README's table); `exit_code_for` maps errors onto it."""

    OK = 0
    """everything was indexed, skipped as unchanged, found or done"""
    PARTIAL = 1
    """some documents failed or went to dead letters, or what was to be dropped did not exist"""
    USAGE = 2
    """a bad flag, setting, input file or model, or an index that does not exist"""
    STORE = 3
    """the store could not be reached or refused the operation"""
    INTERRUPTED = 130
    """Ctrl-C"""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The one place an error becomes an exit status."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, StoreError) and not isinstance(exc, IndexNotFoundError):
        return ExitCode.STORE
    return ExitCode.USAGE


@contextmanager
def handled(on_interrupt: str = "") -> Iterator[None]:
    """Turn a neurank error into one redacted `error:` line and its exit status; Ctrl-C into 130."""
    try:
        yield
    except NeurankError as exc:
        console.print(f"[red]error:[/red] {plain(exc)}", soft_wrap=True)
        raise typer.Exit(code=exit_code_for(exc)) from exc
    except KeyboardInterrupt as exc:
        console.print("[yellow]interrupted[/yellow]" + (f": {escape(on_interrupt)}" if on_interrupt else ""))
        raise typer.Exit(code=exit_code_for(exc)) from None


def plain(value: object) -> str:
    """`value` as text for `console.print`: credentials redacted, brackets shown as brackets, not Rich markup."""
    return escape(redact(str(value)))


class ConsoleLogHandler(logging.Handler):
    """Shows neurank's progress messages (ONNX exports made on first use) on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(f"[dim]{plain(record.getMessage())}[/dim]", soft_wrap=True)


@app.callback()
def set_up_console() -> None:
    """Say what neurank does (exports on first use); keep transformers' per-load bars and reports off the console."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logger = logging.getLogger("neurank")
    if not any(isinstance(handler, ConsoleLogHandler) for handler in logger.handlers):
        logger.addHandler(ConsoleLogHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown here once, not again by a root handler a library may have installed


app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
app.add_typer(dashboards_app, name="dashboards")

StoreOpt = Annotated[str | None, typer.Option("--store", help="local:PATH or http(s)://host:port")]
IndexOpt = Annotated[str | None, typer.Option("--index", help="index name (default NEURANK_INDEX)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
RuntimeOpt = Annotated[str | None, typer.Option("--runtime", help="torch or onnx")]
SparseOpt = Annotated[str | None, typer.Option("--sparse-model", help="bundled name, folder, or 'none'")]
DenseOpt = Annotated[str | None, typer.Option("--dense-model", help="bundled name, folder, or 'none'")]
ColbertOpt = Annotated[str | None, typer.Option(
    "--colbert-model", help="late-interaction model folder, or 'none' (default NEURANK_COLBERT_MODEL)")]
RerankOpt = Annotated[str | None, typer.Option("--rerank-model",
                                                help="cross-encoder folder (default NEURANK_RERANK_MODEL)")]
DuoOpt = Annotated[str | None, typer.Option("--duo-model",
                                             help="pairwise model folder for +duo (default NEURANK_DUO_MODEL)")]
FirstStageWeightOpt = Annotated[float | None, typer.Option(
    "--first-stage-weight", help="share of the first-stage score in a reranked hit's score (0: cross-encoder only)")]


FuzzinessOpt = Annotated[str | None, typer.Option(
    "--fuzziness", help="BM25 matches terms fuzzily: AUTO, AUTO:low,high, 0, 1 or 2 edits (default NEURANK_FUZZINESS)")]
PrefixLengthOpt = Annotated[int | None, typer.Option(
    "--prefix-length", help="leading characters a fuzzy match keeps (default NEURANK_FUZZY_PREFIX_LENGTH, 0)")]
MaxExpansionsOpt = Annotated[int | None, typer.Option(
    "--max-expansions", help="index terms one fuzzy term expands to (default NEURANK_FUZZY_MAX_EXPANSIONS, 50)")]
TranspositionsOpt = Annotated[bool | None, typer.Option(
    "--transpositions/--no-transpositions", help="a swap of adjacent characters is one edit (default: yes)")]
NgramOpt = Annotated[bool | None, typer.Option(
    "--ngram/--no-ngram", help="BM25 also matches character n-grams (an index made with NEURANK_NGRAM)")]
SpellingOpt = Annotated[bool | None, typer.Option(
    "--spelling/--no-spelling", help="correct words the index does not know before every stage (default "
                                     "NEURANK_SPELLING, off)")]


def settings_from(**overrides: Any) -> Settings:
    """Environment first (NEURANK_*), then the flags that were given; a bad value is a `ConfigError`."""
    return load_settings(**overrides)


def emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def count_lines(path: Path) -> int:
    from neurank.documents import corpus_path, open_corpus

    with open_corpus(corpus_path(path)) as handle:
        return sum(1 for _ in handle)


def open_configured_store(settings: Settings) -> Any:
    from neurank.stores import open_store

    return open_store(settings)


def index_for_eval(dataset: Path, settings: Settings) -> SearchTarget:
    """`dataset` indexed in the configured store as `neurank eval` searches it (reused when unchanged)."""
    from neurank.eval.runner import index_dataset
    from neurank.onnx_models.bundle import ensure_exports
    from neurank.query.target import SearchTarget

    ensure_exports([settings], lambda message: console.status(plain(message)))
    target = SearchTarget.from_settings(settings, f"beir-{dataset.name}")
    with progress_bar(f"index {dataset.name}", count_lines(dataset)) as advance:
        index_dataset(dataset, target, settings, on_progress=advance)
    return target


def float_list(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=flag) from None


FusionOpt = Annotated[str, typer.Option("--fusion", help="rrf, min_max, l2, z_score, or learned:DIR (a model made "
                                                         "by `neurank train fusion`)")]
CombinationOpt = Annotated[str, typer.Option(help="arithmetic_mean, geometric_mean, harmonic_mean")]
WeightsOpt = Annotated[str | None, typer.Option(help="comma-separated, one per stage in the mode's order")]
RankConstantOpt = Annotated[int, typer.Option(help="RRF rank constant")]


def fusion_from(technique: str, combination: str, weights: str | None, rank_constant: int) -> PlanFusion:
    """The fusion the flags describe: OpenSearch's, or a learned model's (`learned:DIR`)."""
    from neurank.query.learned_fusion import LEARNED, LearnedFusion
    from neurank.retrieval import Fusion

    if technique == LEARNED or technique.startswith(f"{LEARNED}:"):
        folder = technique.partition(":")[2]
        if not folder:
            raise typer.BadParameter("name the model folder: --fusion learned:DIR", param_hint="--fusion")
        return LearnedFusion.load(folder)

    return Fusion(technique=technique, combination=combination, rank_constant=rank_constant,  # type: ignore[arg-type]
                  weights=float_list(weights, "--weights") if weights else None)


def default_depth(fusion: PlanFusion) -> int:
    """Hits per first stage: the depth a learned fusion was trained at, else 100."""
    from neurank.query.learned_fusion import LearnedFusion

    return fusion.depth if isinstance(fusion, LearnedFusion) else 100


def stage_cell(hit: Any, stage: str) -> str:
    score = hit.stages.get(stage)
    if score is None:
        return "—"
    return f"{score.raw:.3f}" if score.normalized is None else f"{score.raw:.3f} → {score.normalized:.3f}"


def hits_table(title: str, result: Any) -> Table:
    """Hits with each stage's score, one line a hit where the terminal leaves the title room (a long title is cut
    with an ellipsis; `--json` has it whole), else wrapped; ids and titles are shown as text, never as markup."""
    stages = [s for s in ("bm25", "sparse", "dense", "colbert", "rerank", "duo")
              if any(s in h.stages for h in result.hits)]
    columns = ["#", "id", "score", *stages]
    rows = [[str(rank), hit.id, f"{hit.score:.4f}", *(stage_cell(hit, s) for s in stages)]
            for rank, hit in enumerate(result.hits, start=1)]
    # each column: its widest cell plus one space each side and one rule; what is left goes to the title
    used = sum(max(len(column), *(len(row[i]) for row in rows)) + 3 for i, column in enumerate(columns)) + 4
    one_line = console.width - used >= 20
    table = Table(title=Text(title), title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column == "id" else "right", no_wrap=one_line)
    table.add_column("title", no_wrap=one_line, overflow="ellipsis" if one_line else "fold",
                     max_width=console.width - used if one_line else None)
    for row, hit in zip(rows, result.hits, strict=True):
        table.add_row(*(Text(cell) for cell in row), Text(hit.title))
    return table


def key_value_table(title: str, payload: dict[str, Any]) -> Table:
    table = Table(title=Text(title), show_header=False)
    for key, value in payload.items():
        table.add_row(Text(key), Text(json.dumps(value) if isinstance(value, dict | list) else str(value)))
    return table


@app.command()
def demo(
    dataset: Annotated[Path | None, typer.Option(help="a BEIR-layout folder instead of the samples")] = None,
    store: StoreOpt = None,
    runtime: RuntimeOpt = None,
    rerank_model: RerankOpt = None,
    colbert_model: ColbertOpt = None,
    first_stage_weight: FirstStageWeightOpt = None,
    k: Annotated[int, typer.Option(help="hits shown per query")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Index a sample corpus (English and Russian) on the embedded store and answer example queries."""
    from neurank.demo import dataset_corpus, run_demo, sample_corpora
    from neurank.onnx_models.bundle import ensure_exports

    with handled():
        settings = settings_from(store=store, runtime=runtime, rerank_model=rerank_model, colbert_model=colbert_model,
                                 rerank_first_stage_weight=first_stage_weight)
        if settings.store is None:
            settings = settings.model_copy(update={"store": f"local:{settings.home / 'demo'}"})
        corpora = [dataset_corpus(dataset, settings)] if dataset else sample_corpora(settings)
        ensure_exports([c.settings for c in corpora], lambda message: console.status(plain(message)))
        reranker = load_reranker(settings)
        output = []
        with progress_bar("indexing", None) as advance:
            runs = list(run_demo(corpora, open_configured_store(settings), k=k,
                                 reranker=reranker, on_progress=lambda _name, n: advance(n)))
        for run in runs:
            output.append({"index": run.corpus.index, "ingest": run.ingest.to_dict(),
                           "queries": [r.to_dict() for r in run.results]})
            if not as_json:
                console.print(f"[bold]{plain(run.corpus.index)}[/bold]: {run.ingest.indexed} indexed, "
                              f"{run.ingest.skipped} unchanged, {run.ingest.failed} failed")
                for result in run.results:
                    console.print(hits_table(f"“{result.query}”", result))
                for note in dict.fromkeys(note for result in run.results for note in result.notes):
                    console.print(f"[yellow]{plain(note)}[/yellow]")
    if as_json:
        emit_json(output)


class DefaultCommandGroup(TyperGroup):
    """A group that sends arguments naming none of its subcommands to `run`: `neurank ingest PATH` still works."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click.Context, not exported
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


class Via(StrEnum):
    inline = "inline"
    celery = "celery"


ingest_app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                         help="Index documents (`neurank ingest PATH`), or see a queued ingest (`status`).")
app.add_typer(ingest_app, name="ingest")


@ingest_app.command("run")
def ingest(
    path: Annotated[Path | None, typer.Argument(help="JSONL file or BEIR folder")] = None,
    store: StoreOpt = None,
    index: IndexOpt = None,
    runtime: RuntimeOpt = None,
    sparse_model: SparseOpt = None,
    dense_model: DenseOpt = None,
    colbert_model: ColbertOpt = None,
    language: Annotated[str | None, typer.Option(help="english or russian")] = None,
    via: Annotated[Via, typer.Option(help="encode here, or on Celery workers (NEURANK_BROKER_URL)")] = Via.inline,
    retry_dead: Annotated[bool, typer.Option("--retry-dead", help="send the dead letters to the workers again")] = (
        False),
    as_json: JsonOpt = False,
) -> None:
    """Validate, encode and index documents; report indexed / skipped / failed / dead with reasons."""
    from neurank.ingest.run import run_ingest

    if (path is None) != retry_dead:
        raise typer.BadParameter("give a PATH to ingest, or --retry-dead without one")
    description = "retry dead letters" if path is None else f"ingest {path.name} ({via.value})"
    with handled(on_interrupt="run the same command again to finish; what is already indexed is skipped, "
                              "and batches already queued still run on the workers"):
        settings = settings_from(store=store, index=index, runtime=runtime, sparse_model=sparse_model,
                                 dense_model=dense_model, colbert_model=colbert_model, language=language)
        with progress_bar(escape(description), None if path is None else count_lines(path)) as advance:
            summary = run_ingest(settings, path, via=via.value, on_progress=advance)
    if as_json:
        payload = summary.to_dict()
        for failure in (*payload["failures"], *payload["dead_letters"]):
            failure["reason"] = redact(failure["reason"])  # a server may echo a credential back
        emit_json(payload)
    else:
        console.print(f"indexed {summary.indexed}, skipped {summary.skipped} (unchanged), failed {summary.failed}, "
                      f"dead {len(summary.dead)}"
                      + (f", {summary.truncated} truncated to the model window" if summary.truncated else ""))
        for failure in summary.failures:
            console.print(f"  [red]failed[/red] {plain(failure.source or failure.id)}: {plain(failure.reason)}")
        for letter in summary.dead:
            console.print(f"  [red]dead[/red] {plain(letter.id)} ({plain(letter.source)}): {plain(letter.reason)}")
    if summary.failed or summary.dead:
        raise typer.Exit(code=ExitCode.PARTIAL)


@ingest_app.command("status")
def ingest_status(store: StoreOpt = None, index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Where the latest queued ingest of an index stands: batches queued, in flight, done; dead letters."""
    with handled():
        from neurank.ingest.status import ingest_status as read_status

        status = read_status(settings_from(store=store, index=index))
    if as_json:
        emit_json(status.to_dict())
        return
    console.print(key_value_table(f"ingest of {status.index} into {status.store}", status.to_dict()))


@app.command()
def worker(
    store: StoreOpt = None,
    concurrency: Annotated[int | None, typer.Option(help="pool processes (default: one per core)")] = None,
    queues: Annotated[str | None, typer.Option(help="comma-separated queues (default NEURANK_INGEST_QUEUE)")] = None,
    runtime: RuntimeOpt = None,
    sparse_model: SparseOpt = None,
    dense_model: DenseOpt = None,
    colbert_model: ColbertOpt = None,
) -> None:
    """Run a Celery worker that encodes queued batches and writes them to its own store."""
    with handled():
        from neurank.ingest.worker import run_worker

        settings = settings_from(store=store, runtime=runtime, sparse_model=sparse_model, dense_model=dense_model,
                                 colbert_model=colbert_model)
        run_worker(settings, concurrency=concurrency, queues=queues.split(",") if queues else None)


@app.command()
def search(
    query: Annotated[str, typer.Argument()],
    store: StoreOpt = None,
    index: IndexOpt = None,
    mode: Annotated[str, typer.Option(help="bm25, sparse, dense, hybrid (every stage the index has), or a set "
                                           "such as bm25+dense")] = "hybrid",
    rerank_model: RerankOpt = None,
    duo_model: DuoOpt = None,
    first_stage_weight: FirstStageWeightOpt = None,
    k: Annotated[int, typer.Option(help="hits to return")] = 10,
    depth: Annotated[int | None, typer.Option(help="hits per stage before fusion and rerank (default 100, or the "
                                                   "depth a learned fusion was trained at)")] = None,
    runtime: RuntimeOpt = None,
    sparse_model: SparseOpt = None,
    dense_model: DenseOpt = None,
    colbert_model: ColbertOpt = None,
    explain: Annotated[bool, typer.Option("--explain", help="show the terms that scored")] = False,
    fusion: FusionOpt = DEFAULT_HYBRID_FUSION.technique,
    combination: CombinationOpt = DEFAULT_HYBRID_FUSION.combination,
    weights: WeightsOpt = None,
    rank_constant: RankConstantOpt = 60,
    fuzziness: FuzzinessOpt = None,
    prefix_length: PrefixLengthOpt = None,
    max_expansions: MaxExpansionsOpt = None,
    transpositions: TranspositionsOpt = None,
    ngram: NgramOpt = None,
    spelling: SpellingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search an index; every hit carries each stage's raw and normalized score."""
    from neurank.query.target import SearchTarget

    with handled():
        settings = settings_from(store=store, index=index, runtime=runtime, sparse_model=sparse_model,
                                 dense_model=dense_model, colbert_model=colbert_model, rerank_model=rerank_model,
                                 rerank_first_stage_weight=first_stage_weight, duo_model=duo_model,
                                 fuzziness=fuzziness, fuzzy_prefix_length=prefix_length,
                                 fuzzy_max_expansions=max_expansions, fuzzy_transpositions=transpositions,
                                 ngram_match=ngram, spelling=spelling)
        searcher = SearchTarget.from_settings(settings).searcher(load_reranker(settings), duo=load_duo(settings))
        fusion_spec = fusion_from(fusion, combination, weights, rank_constant)
        plan = searcher.plan(mode, k=k, depth=depth or default_depth(fusion_spec), fusion=fusion_spec,
                             fuzzy=settings.fuzzy(), ngram=settings.ngram_match, spelling=settings.spelling)
        result = searcher.search(query, plan, explain=explain)
    if as_json:
        emit_json(result.to_dict())
        return
    searched = f" → “{result.spelling.text}”" if result.spelling and result.spelling.changes else ""
    console.print(hits_table(f"“{query}”{searched} ({mode}, {result.timings_ms['total']:.1f} ms)", result))
    for note in result.notes:
        console.print(f"[yellow]{plain(note)}[/yellow]")
    for hit, explanation in zip(result.hits, result.explanations or [], strict=False):
        console.print(f"[bold]{plain(hit.id)}[/bold] {plain(explanation.render())}")


@app.command()
def serve(
    store: StoreOpt = None,
    index: IndexOpt = None,
    host: Annotated[str, typer.Option(help="address to bind; any but loopback needs NEURANK_SERVE_API_KEY")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="processes, each with its own models")] = 1,
    runtime: RuntimeOpt = None,
    rerank_model: RerankOpt = None,
    colbert_model: ColbertOpt = None,
) -> None:
    """Serve the index over HTTP (search API, metrics, search page at /); knobs in NEURANK_SERVE_*."""
    with handled():
        from neurank.serve.options import load_options
        from neurank.serve.run import serve as run_service

        settings = settings_from(store=store, index=index, runtime=runtime, rerank_model=rerank_model,
                                 colbert_model=colbert_model)
        run_service(settings, load_options(), host=host, port=port, workers=workers)


@app.command(name="eval")
def eval_command(
    dataset: Annotated[Path, typer.Option(help="BEIR-layout folder")],
    split: Annotated[str, typer.Option(help="qrels split")] = "test",
    modes: Annotated[str, typer.Option(help="comma-separated: bm25, sparse, dense, hybrid or a set such as "
                                            "bm25+dense, each optionally +colbert, +rerank and/or +duo")] = (
        "bm25,sparse,dense,hybrid"),
    rerank_model: RerankOpt = None,
    duo_model: DuoOpt = None,
    colbert_model: ColbertOpt = None,
    first_stage_weight: FirstStageWeightOpt = None,
    store: StoreOpt = None,
    runtime: RuntimeOpt = None,
    fusion: FusionOpt = DEFAULT_HYBRID_FUSION.technique,
    combination: CombinationOpt = DEFAULT_HYBRID_FUSION.combination,
    weights: WeightsOpt = None,
    rank_constant: RankConstantOpt = 60,
    run: Annotated[list[Path] | None, typer.Option(
        "--run", help="score this TREC run file instead of searching (repeatable; --modes is ignored)")] = None,
    diagnostics: Annotated[bool, typer.Option(
        "--diagnostics", help="add Recall@10, micro-recall@10/@100 per mode, and per model separation accuracy "
                              "(mined and random negatives) and silhouette")] = False,
    fuzziness: FuzzinessOpt = None,
    prefix_length: PrefixLengthOpt = None,
    max_expansions: MaxExpansionsOpt = None,
    transpositions: TranspositionsOpt = None,
    ngram: NgramOpt = None,
    spelling: SpellingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, Recall@100, MRR@10 and p50 latency per mode, on a BEIR dataset's split."""
    from neurank.eval.runner import evaluate_modes, evaluate_runs

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    models: dict[str, Any] = {}
    with handled():
        if run:
            reports = evaluate_runs(dataset, run, split=split, diagnostics=diagnostics)
        else:
            settings = settings_from(store=store, runtime=runtime, rerank_model=rerank_model, duo_model=duo_model,
                                     colbert_model=colbert_model, rerank_first_stage_weight=first_stage_weight,
                                     fuzziness=fuzziness, fuzzy_prefix_length=prefix_length,
                                     fuzzy_max_expansions=max_expansions, fuzzy_transpositions=transpositions,
                                     ngram_match=ngram, spelling=spelling)
            fusion_spec = fusion_from(fusion, combination, weights, rank_constant)
            target = index_for_eval(dataset, settings)
            from neurank.eval.datasets import load_qrels

            n_queries = len(load_qrels(dataset, split)) * len(mode_list)
            with progress_bar(f"queries ({split})", n_queries) as advance:
                reranker, duo = load_reranker(settings), load_duo(settings)
                reports = evaluate_modes(dataset, mode_list, target, settings, split=split,
                                         fusion=fusion_spec, depth=default_depth(fusion_spec),
                                         reranker=reranker, duo=duo,
                                         runs_dir=settings.home / "runs", on_query=advance, diagnostics=diagnostics)
            if diagnostics:
                models = diagnose_models(dataset, target, target.searcher(reranker, duo=duo), mode_list, split)
    if as_json:
        by_mode = {mode: report.to_dict() for mode, report in reports.items()}
        emit_json({"modes": by_mode, "models": models} if diagnostics else by_mode)
        return
    table = Table(title=Text(f"{dataset.name} ({split}, {next(iter(reports.values())).queries} queries)"))
    for column in ("mode", "nDCG@10", "Recall@100", "MRR@10", "p50 ms"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, report in reports.items():
        m = report.metrics
        latency = "—" if report.latency_ms_p50 is None else f"{report.latency_ms_p50:.1f}"
        table.add_row(Text(mode), f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", f"{m['mrr@10']:.4f}", latency)
    console.print(table)
    if diagnostics and reports:
        console.print(diagnostics_tables(reports, models))


def diagnose_models(dataset: Path, target: SearchTarget, searcher: Any, modes: list[str], split: str
                    ) -> dict[str, Any]:
    from neurank.eval.datasets import read_passages
    from neurank.eval.model_diagnostics import model_diagnostics

    with console.status("diagnostics") as status:
        found = model_diagnostics(dataset, target, searcher, modes, split=split,
                                  corpus=read_passages(dataset),
                                  on_model=lambda name: status.update(f"diagnostics of {name}"))
    return {name: diagnosis.to_dict() for name, diagnosis in found.items()}


def diagnostics_tables(reports: dict[str, Any], models: dict[str, Any]) -> Group:
    """Recall per mode, then separation and silhouette per model ('n/a' where a diagnostic does not apply)."""
    recall = Table(title="recall per mode")
    keys = [key for key in next(iter(reports.values())).metrics if "recall@" in key]
    for column in ("mode", *keys):
        recall.add_column(column, justify="left" if column == "mode" else "right")
    for mode, report in reports.items():
        recall.add_row(Text(mode), *(f"{report.metrics[key]:.4f}" for key in keys))
    per_model = Table(title="diagnostics per model")
    for column in ("model", "separation (mined)", "separation (random)", "silhouette"):
        per_model.add_column(column, justify="left" if column == "model" else "right")
    for name, found in models.items():
        per_model.add_row(Text(name), *(_figure(found[key]) for key in
                                        ("separation_mined", "separation_random", "silhouette")))
    return Group(recall, per_model)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@index_app.command("info")
def index_info(name: Annotated[str, typer.Argument()], store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Document count and the model fingerprints an index was built with."""
    with handled():
        info = describe_index(open_configured_store(settings_from(store=store)), name)
    print_index(info, as_json)


def describe_index(target: Any, name: str) -> dict[str, Any]:
    spec = target.index_spec(name)
    if spec is None:
        raise IndexNotFoundError(name, target.url)
    return {"index": name, "store": target.url, "count": target.count(name), "models": dict(spec.models),
            "language": spec.language, "dense_dimension": spec.dense_dimension,
            "space_type": spec.space_type, "bm25": {"k1": spec.bm25_k1, "b": spec.bm25_b}}


def print_index(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(info)
        return
    console.print(key_value_table(f"index {info['index']}", info))


@index_app.command("create")
def index_create(name: Annotated[str | None, typer.Argument(help="index name (default NEURANK_INDEX)")] = None,
                 store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Create an index for the configured models (and its fusion pipeline on a cluster with neural-search)."""
    from neurank.ingest.inline import create_configured_index

    with handled():
        settings = settings_from(store=store, index=name)
        info = describe_index(create_configured_index(settings), settings.index)
    print_index(info, as_json)


@index_app.command("drop")
def index_drop(name: Annotated[str, typer.Argument()], store: StoreOpt = None) -> None:
    """Delete an index and its documents; exit 1 when there was no such index."""
    with handled():
        target = open_configured_store(settings_from(store=store))
        existed = target.drop_index(name)
    if not existed:
        console.print(f"[yellow]no index {plain(name)}[/yellow] in {plain(target.url)}: nothing dropped")
        raise typer.Exit(code=ExitCode.PARTIAL)
    console.print(f"dropped {plain(name)}")


@app.command()
def delete(
    ids: Annotated[list[str] | None, typer.Argument(help="document ids")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="a file of ids, one per line")] = None,
    store: StoreOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete documents by id (on a cluster through the index alias); exit 1 when some ids were not stored."""
    from neurank.documents import read_ids

    if not ids and file is None:
        raise typer.BadParameter("give document ids, or --file with one id per line")
    with handled():
        settings = settings_from(store=store, index=index)
        wanted = list(dict.fromkeys([*(ids or []), *(read_ids(file) if file else [])]))
        target = open_configured_store(settings)
        if target.index_spec(settings.index) is None:
            raise IndexNotFoundError(settings.index, target.url)
        deleted = target.delete(settings.index, wanted)
    if as_json:
        emit_json({"index": settings.index, "deleted": deleted, "not_found": len(wanted) - deleted})
    else:
        console.print(f"deleted {deleted} of {len(wanted)} from {plain(settings.index)}"
                      + (f" ({len(wanted) - deleted} not stored)" if deleted < len(wanted) else ""))
    if deleted < len(wanted):
        raise typer.Exit(code=ExitCode.PARTIAL)


ForOpt = Annotated[str | None, typer.Option("--for", help="kibana or opensearch-dashboards")]


def configured_saved_objects(settings: Settings, target: str) -> SavedObjects:
    """The saved objects for the configured index, mapped as the store holds it (as `neurank index create` would
    map it for the configured encoders where it does not exist yet); notes what is left out."""
    from neurank.dashboards import objects_for_spec, product
    from neurank.onnx_models.bundle import EncoderBundle

    chosen = product(target)
    spec = open_configured_store(settings).index_spec(settings.index)
    if spec is None:
        console.print(f"[yellow]note[/yellow] no index {plain(settings.index)} in the store yet: the objects are for "
                      "the one the configured encoders would create", soft_wrap=True)
        spec = EncoderBundle.from_settings(settings).index_spec(settings)
    saved = objects_for_spec(settings.index, spec, chosen)
    for note in saved.left_out:
        console.print(f"[yellow]left out[/yellow] {plain(note)}", soft_wrap=True)
    return saved


@dashboards_app.command("export")
def dashboards_export(
    target: Annotated[str, typer.Option("--for", help="kibana or opensearch-dashboards")],
    index: IndexOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="the .ndjson file to write (default: stdout)")] = None,
) -> None:
    """Write the index pattern, saved search and visualizations of an index as an import .ndjson."""
    with handled():
        settings = settings_from(index=index)
        saved = configured_saved_objects(settings, target)
    if out is None:
        typer.echo(saved.ndjson(), nl=False)
        return
    try:
        out.write_text(saved.ndjson(), encoding="utf-8")
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot write {plain(out)}: {plain(exc.strerror or exc)}", soft_wrap=True)
        raise typer.Exit(code=ExitCode.USAGE) from exc
    console.print(f"wrote {len(saved.objects)} saved objects for {plain(settings.index)} to {plain(out)}")


@dashboards_app.command("install")
def dashboards_install(
    url: Annotated[str, typer.Option("--url", help="Kibana or OpenSearch Dashboards, e.g. http://localhost:5601")],
    index: IndexOpt = None,
    target: ForOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="default NEURANK_DASHBOARDS_USER, else the store's")] = (
        None),
    password: Annotated[str | None, typer.Option(
        "--password", help="default NEURANK_DASHBOARDS_PASSWORD (prefer the variable: flags show in ps)")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="default NEURANK_DASHBOARDS_API_KEY")] = None,
    ca_certs: Annotated[Path | None, typer.Option("--ca-certs", help="CA bundle for https")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify the https certificate")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="seconds per request")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import the saved objects (overwriting earlier ones); exit 1 when some objects failed, 3 when refused."""
    from neurank.dashboards import Connection, detect_product, install

    with handled():
        settings = settings_from(index=index, dashboards_user=user, dashboards_password=password,
                                 dashboards_api_key=api_key, dashboards_ca_certs=ca_certs,
                                 dashboards_verify_certs=False if insecure else None, dashboards_timeout_s=timeout)
        connection = Connection.from_settings(settings, url)
        saved = configured_saved_objects(settings, target or detect_product(connection))
        report = install(connection, saved)
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(title=Text(f"saved objects of {settings.index} in {report.product} at {report.url}"),
                      title_justify="left")
        for column in ("type", "title", "outcome", "message"):  # the ids are in --json
            table.add_column(column)
        for obj in report.objects:
            style = "red" if obj.failed else "green"
            table.add_row(obj.type, Text(obj.title), Text(obj.outcome, style=style), Text(obj.message))
        console.print(table)
    if report.failed:
        raise typer.Exit(code=ExitCode.PARTIAL)


@models_app.command("export")
def models_export(
    model: Annotated[str, typer.Argument(help="bundled name or model folder")],
    int8: Annotated[bool, typer.Option("--int8", help="also quantize to int8")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export to ONNX (dynamo exporter), optionally quantize to int8, and report parity with PyTorch."""
    from neurank.onnx_models import export_model

    with handled(), console.status(f"exporting {plain(model)} …"):
        report = export_model(model, home=settings_from().home, int8=int8, progress=lambda m: console.print(plain(m)))
    payload = report.to_dict()
    if as_json:
        emit_json(payload)
        return
    console.print(key_value_table(f"ONNX export of {model}", payload))


train_app = typer.Typer(no_args_is_help=True,
                        help="Train cross-encoder, pairwise, dense, sparse and late-interaction models on a BEIR "
                             "dataset.")
app.add_typer(train_app, name="train")

TrainDatasetOpt = Annotated[Path, typer.Option("--dataset", help="BEIR folder with qrels/train.tsv (and dev.tsv)")]
TrainOutOpt = Annotated[Path, typer.Option("--out", help="folder for the model, its ONNX export and training.json")]
BaseOpt = Annotated[str | None, typer.Option("--base", help="model to start from: bundled name or folder")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="optimizer steps")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="queries per step")]
NegativesOpt = Annotated[int | None, typer.Option("--negatives", help="mined negatives per query")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="peak learning rate")]
MaxLengthOpt = Annotated[int | None, typer.Option("--max-length", help="tokens per training input")]
SeedOpt = Annotated[int | None, typer.Option("--seed")]
EvalEveryOpt = Annotated[int | None, typer.Option("--eval-every", help="steps between dev evaluations")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", help="evaluations without gain before stopping")]
TimeLimitOpt = Annotated[float | None, typer.Option("--time-limit", help="minutes of training at most")]
MineOpt = Annotated[str | None, typer.Option("--negatives-from", help="bm25, dense or hybrid")]
RangeMinOpt = Annotated[int | None, typer.Option("--range-min",
                                                 help="first-stage ranks skipped when mining (unjudged positives)")]
RangeMaxOpt = Annotated[int | None, typer.Option("--range-max", help="deepest first-stage rank mined")]
DevDepthOpt = Annotated[int | None, typer.Option("--dev-depth", help="candidates reranked per dev query")]
EvalSplitOpt = Annotated[str | None, typer.Option("--eval-split", help="final evaluation split, or 'none'")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="continue from the checkpoint in --out")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="torch threads (default: all cores)")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto (a CUDA GPU if there is one), cpu, cuda, cuda:N")]
PrecisionOpt = Annotated[str | None, typer.Option("--precision", help="fp32, or bf16 (autocast: faster on GPUs)")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="softmax temperature of the loss")]
TRAIN_FLAGS = ("base", "steps", "batch_size", "n_negatives", "learning_rate", "head_learning_rate", "max_length",
               "seed", "eval_every", "patience", "time_limit_minutes", "negatives_from", "range_min", "range_max",
               "dev_depth", "eval_split", "resume", "threads", "device", "precision")
"""The parameters of the train commands that are `TrainConfig` fields (same names; a command may lack some)."""


def run_trainer(train: Any, defaults: Any, options: Any, flags: dict[str, Any], as_json: bool) -> None:
    """Build the config from the trainer's defaults and the given flags, train, print the report.

    `options` builds the trainer's own options (inside the error handling: they validate); `--eval-split
    none` skips the final evaluation.
    """
    dataset, out, runtime = flags.pop("dataset"), flags.pop("out"), flags.pop("runtime")
    skip = (flags.get("eval_split") or "").lower() == "none"
    shared = {name: flags.get(name) for name in TRAIN_FLAGS}
    with handled(on_interrupt="run the same command again to resume from the last checkpoint"):
        settings = settings_from(runtime=runtime)
        config = defaults.with_overrides(**{**shared, "eval_split": None if skip else shared["eval_split"]},
                                         no_final_evaluation=skip)
        report = train(dataset, out, settings, config, options(), say=lambda message: console.print(plain(message)))
    if as_json:
        emit_json(report.to_dict())
        return
    loop = report.loop
    console.print(f"{report.kind} model in {plain(report.out)}: {loop.steps} steps in {loop.seconds / 60:.1f} min, "
                  f"best dev {report.dev_measure} {loop.best_metric:.4f} at step {loop.best_step}"
                  + (" (stopped early)" if loop.stopped_early else "") + (" (time limit)" if loop.timed_out else ""))
    for mode, metrics in (report.evaluation or {}).items():
        console.print(f"  {plain(report.dataset)} {report.eval_split} {plain(mode)}: nDCG@10 {metrics['ndcg@10']:.4f}, "
                      f"Recall@100 {metrics['recall@100']:.4f}, MRR@10 {metrics['mrr@10']:.4f}, "
                      f"micro-recall@100 {metrics['micro_recall@100']:.4f}")
    if loop.history:
        console.print(f"  dev diagnostics at step {loop.history[-1]['step']:.0f}: "
                      + plain(", ".join(f"{name} {value:.4f}" for name, value in loop.history[-1].items()
                                        if name not in ("step", "loss", "dev"))))
    if report.diagnostics is not None:
        found = report.diagnostics
        console.print(f"  {plain(report.dataset)} {report.eval_split} diagnostics ({found.queries} queries): "
                      f"separation (mined) {_figure(found.separation_mined)}, separation (random) "
                      f"{_figure(found.separation_random)}, silhouette {_figure(found.silhouette)}")
        for name, why in found.not_applicable.items():
            console.print(f"    {name}: {plain(why)}")


@train_app.command("cross-encoder")
def train_cross_encoder_command(
    dataset: TrainDatasetOpt, out: TrainOutOpt, base: BaseOpt = None, steps: StepsOpt = None,
    batch_size: BatchOpt = None, n_negatives: NegativesOpt = None, learning_rate: LrOpt = None,
    max_length: MaxLengthOpt = None, seed: SeedOpt = None, eval_every: EvalEveryOpt = None,
    patience: PatienceOpt = None, time_limit_minutes: TimeLimitOpt = None, negatives_from: MineOpt = None,
    range_min: RangeMinOpt = None, range_max: RangeMaxOpt = None, dev_depth: DevDepthOpt = None,
    eval_split: EvalSplitOpt = None, resume: ResumeOpt = True,
    threads: ThreadsOpt = None, device: DeviceOpt = None, precision: PrecisionOpt = None,
    head_learning_rate: Annotated[float | None, typer.Option("--head-lr", help="learning rate of the new head")] = (
        None),
    loss: Annotated[str, typer.Option(help="softmax (listwise), bce (pointwise) or ranknet (pairwise)")] = "softmax",
    temperature: TemperatureOpt = None, runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """A one-logit reranker from --base's encoder, on (query, positive, mined negatives) groups."""
    from neurank.train.cross_encoder import DEFAULTS, CrossEncoderOptions, train_cross_encoder

    def options() -> CrossEncoderOptions:
        return CrossEncoderOptions(loss=loss, temperature=temperature or 1.0)  # type: ignore[arg-type]

    run_trainer(train_cross_encoder, DEFAULTS, options, locals(), as_json)


@train_app.command("duo")
def train_duo_command(
    dataset: TrainDatasetOpt, out: TrainOutOpt, base: BaseOpt = None, steps: StepsOpt = None,
    batch_size: BatchOpt = None, n_negatives: NegativesOpt = None, learning_rate: LrOpt = None,
    max_length: MaxLengthOpt = None, seed: SeedOpt = None, eval_every: EvalEveryOpt = None,
    patience: PatienceOpt = None, time_limit_minutes: TimeLimitOpt = None, negatives_from: MineOpt = None,
    range_min: RangeMinOpt = None, range_max: RangeMaxOpt = None, dev_depth: DevDepthOpt = None,
    eval_split: EvalSplitOpt = None, resume: ResumeOpt = True,
    threads: ThreadsOpt = None, device: DeviceOpt = None, precision: PrecisionOpt = None,
    head_learning_rate: Annotated[float | None, typer.Option("--head-lr", help="learning rate of the new head")] = (
        None),
    query_length: Annotated[int, typer.Option(help="query tokens kept in each (query, a, b) input")] = 64,
    runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """A pairwise (duoBERT) reranker from --base's encoder: P(a more relevant than b), RankNet on ordered pairs."""
    from neurank.train.duo import DEFAULTS, DuoOptions, train_duo

    def options() -> DuoOptions:
        return DuoOptions(query_length=query_length)

    run_trainer(train_duo, DEFAULTS, options, locals(), as_json)


@train_app.command("calibrate")
def calibrate_command(
    dataset: Annotated[Path, typer.Option("--dataset", help="BEIR folder whose dev queries choose the weights")],
    rerank_model: Annotated[Path | None, typer.Option(
        "--rerank-model", help="cross-encoder folder to calibrate")] = None,
    colbert_model: Annotated[Path | None, typer.Option(
        "--colbert-model", help="late-interaction folder: calibrated itself without --rerank-model, else the stage "
                                "that first stages ending in +colbert run")] = None,
    split: Annotated[str, typer.Option(help="qrels split of the dev queries")] = "dev",
    queries: Annotated[int, typer.Option(help="dev queries scored at most (a seeded sample)")] = 100,
    first_stages: Annotated[str, typer.Option(help="comma-separated: bm25, sparse, dense, hybrid, hybrid+colbert, "
                                                   "…")] = "bm25,hybrid",
    store: StoreOpt = None, runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """Choose a rescoring stage's first-stage weight per first stage on a collection; updates its rerank.json."""
    from neurank.train.calibration import calibrate_model, dev_sample

    stages = [stage.strip() for stage in first_stages.split(",") if stage.strip()]
    with handled():
        model = rerank_model or colbert_model
        if model is None:
            raise typer.BadParameter("give the folder to calibrate: --rerank-model DIR or --colbert-model DIR")
        settings = settings_from(store=store, runtime=runtime,
                                 colbert_model=None if colbert_model is None else str(colbert_model))
        target = index_for_eval(dataset, settings)
        qrels = dev_sample(dataset, split=split, queries=queries)
        with progress_bar(f"rescore dev candidates ({split})", len(qrels) * len(stages)) as advance:
            chosen = calibrate_model(model, dataset, qrels, settings, target=target, first_stages=stages,
                                     split=split, on_query=advance)
    if as_json:
        emit_json([dataclasses.asdict(calibration) for calibration in chosen])
        return
    table = Table(title=Text(f"first-stage weight on {dataset.name} {split} ({chosen[0].measure}, chosen marked)"))
    table.add_column("weight", justify="right")
    for calibration in chosen:
        table.add_column(calibration.first_stage, justify="right")
    for weight in chosen[0].by_weight:
        table.add_row(weight, *(f"{c.by_weight[weight]:.4f}{' ←' if float(weight) == c.first_stage_weight else ''}"
                                for c in chosen))
    console.print(table)


@train_app.command("dense")
def train_dense_command(
    dataset: TrainDatasetOpt, out: TrainOutOpt, base: BaseOpt = None, steps: StepsOpt = None,
    batch_size: BatchOpt = None, n_negatives: NegativesOpt = None, learning_rate: LrOpt = None,
    max_length: MaxLengthOpt = None, seed: SeedOpt = None, eval_every: EvalEveryOpt = None,
    patience: PatienceOpt = None, time_limit_minutes: TimeLimitOpt = None, negatives_from: MineOpt = None,
    range_min: RangeMinOpt = None, range_max: RangeMaxOpt = None, dev_depth: DevDepthOpt = None,
    eval_split: EvalSplitOpt = None, resume: ResumeOpt = True,
    threads: ThreadsOpt = None, device: DeviceOpt = None, precision: PrecisionOpt = None,
    teacher: Annotated[str | None, typer.Option(help="cross-encoder folder to distil (listwise KL)")] = None,
    distill_weight: Annotated[float, typer.Option(help="weight of the distillation term")] = 1.0,
    temperature: TemperatureOpt = None, runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """A bi-encoder from --base, contrastive with in-batch and mined negatives, distilled from --teacher."""
    from neurank.train.dense import DEFAULTS, DenseOptions, train_dense

    def options() -> DenseOptions:
        return DenseOptions(teacher=teacher, distill_weight=distill_weight, temperature=temperature or 0.05)

    run_trainer(train_dense, DEFAULTS, options, locals(), as_json)


@train_app.command("sparse")
def train_sparse_command(
    dataset: TrainDatasetOpt, out: TrainOutOpt, base: BaseOpt = None, steps: StepsOpt = None,
    batch_size: BatchOpt = None, n_negatives: NegativesOpt = None, learning_rate: LrOpt = None,
    max_length: MaxLengthOpt = None, seed: SeedOpt = None, eval_every: EvalEveryOpt = None,
    patience: PatienceOpt = None, time_limit_minutes: TimeLimitOpt = None, negatives_from: MineOpt = None,
    range_min: RangeMinOpt = None, range_max: RangeMaxOpt = None, dev_depth: DevDepthOpt = None,
    eval_split: EvalSplitOpt = None, resume: ResumeOpt = True,
    threads: ThreadsOpt = None, device: DeviceOpt = None, precision: PrecisionOpt = None,
    lambda_query: Annotated[float, typer.Option(help="final FLOPS weight on queries")] = 3e-4,
    lambda_document: Annotated[float, typer.Option(help="final FLOPS weight on documents")] = 1e-4,
    runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """SPLADE fine-tuning from --base with in-batch and mined negatives and FLOPS regularization."""
    from neurank.train.sparse import DEFAULTS, SparseOptions, train_sparse

    def options() -> SparseOptions:
        return SparseOptions(lambda_query=lambda_query, lambda_document=lambda_document)

    run_trainer(train_sparse, DEFAULTS, options, locals(), as_json)


@train_app.command("colbert")
def train_colbert_command(
    dataset: TrainDatasetOpt, out: TrainOutOpt, base: BaseOpt = None, steps: StepsOpt = None,
    batch_size: BatchOpt = None, n_negatives: NegativesOpt = None, learning_rate: LrOpt = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help="document tokens (markers included)")] = None,
    seed: SeedOpt = None, eval_every: EvalEveryOpt = None,
    patience: PatienceOpt = None, time_limit_minutes: TimeLimitOpt = None, negatives_from: MineOpt = None,
    range_min: RangeMinOpt = None, range_max: RangeMaxOpt = None, dev_depth: DevDepthOpt = None,
    eval_split: EvalSplitOpt = None, resume: ResumeOpt = True,
    threads: ThreadsOpt = None, device: DeviceOpt = None, precision: PrecisionOpt = None,
    head_learning_rate: Annotated[float | None, typer.Option("--head-lr", help="learning rate of a new projection")] = (
        None),
    dim: Annotated[int, typer.Option(help="token vector size of a new projection")] = 128,
    query_length: Annotated[int, typer.Option(help="query tokens, padded with [MASK]")] = 32,
    teacher: Annotated[str | None, typer.Option(help="cross-encoder folder to distil (listwise KL)")] = None,
    distill_weight: Annotated[float, typer.Option(help="weight of the distillation term")] = 1.0,
    temperature: TemperatureOpt = None, runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """A late-interaction (ColBERT) model from --base, MaxSim contrastive with in-batch and mined negatives."""
    from neurank.train.colbert import DEFAULTS, ColbertOptions, train_colbert

    def options() -> ColbertOptions:
        return ColbertOptions(dim=dim, query_length=query_length, teacher=teacher, distill_weight=distill_weight,
                              temperature=temperature or 1.0)

    run_trainer(train_colbert, DEFAULTS, options, locals(), as_json)


@train_app.command("fusion")
def train_fusion_command(
    dataset: TrainDatasetOpt,
    out: Annotated[Path, typer.Option("--out", help="folder for model.txt, fusion.json and training.json")],
    mode: Annotated[str, typer.Option(help="the stages whose scores are features, as in `neurank eval --modes`")] = (
        "hybrid"),
    depth: Annotated[int, typer.Option(help="hits per first stage; the candidates are their union")] = 100,
    train_queries: Annotated[int | None, typer.Option(help="train queries at most (a seeded sample)")] = None,
    dev_queries: Annotated[int | None, typer.Option(help="dev queries at most (a seeded sample)")] = None,
    leaves: Annotated[str, typer.Option(help="comma-separated tree sizes; dev NDCG@10 chooses one")] = "7,15,31",
    learning_rate: LrOpt = None,
    seed: SeedOpt = None,
    eval_split: EvalSplitOpt = None,
    threads: Annotated[int | None, typer.Option("--threads", help="LightGBM threads (default: all cores)")] = None,
    rerank_model: RerankOpt = None, colbert_model: ColbertOpt = None, store: StoreOpt = None,
    runtime: RuntimeOpt = None, as_json: JsonOpt = False,
) -> None:
    """A LambdaMART ranker (LightGBM) over each stage's score, rank and absence; use it as --fusion learned:DIR."""
    from neurank.train.fusion import BASELINE, FusionConfig, train_fusion

    skip = (eval_split or "").lower() == "none"
    with handled():
        settings = settings_from(store=store, runtime=runtime, rerank_model=rerank_model, colbert_model=colbert_model)
        defaults = FusionConfig()
        config = FusionConfig(
            mode=mode, depth=depth, leaves=tuple(int(n) for n in float_list(leaves, "--leaves")),
            learning_rate=learning_rate or defaults.learning_rate, seed=defaults.seed if seed is None else seed,
            eval_split=None if skip else eval_split or defaults.eval_split, train_queries=train_queries,
            dev_queries=dev_queries, threads=threads)
        target = index_for_eval(dataset, settings)
        with progress_bar("search train and dev queries", None) as advance:
            report = train_fusion(dataset, out, settings, config, target=target, reranker=load_reranker(settings),
                                  say=lambda message: console.print(plain(message)), on_query=advance)
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=Text(f"learned fusion of {report.mode} on {dataset.name}: dev nDCG@10 by tree size "
                             f"({report.train_queries} train, {report.dev_queries} dev queries)"))
    for column in ("leaves", "iterations", "dev nDCG@10", "LightGBM's best iteration", "its dev NDCG@10"):
        table.add_column(column, justify="right")
    for row in report.tried:
        marker = " ←" if row == report.chosen else ""
        table.add_row(str(row["leaves"]), str(row["iterations"]), f"{row['dev_ndcg@10']:.4f}{marker}",
                      str(row["lightgbm_best_iteration"]), f"{row['lightgbm_dev_ndcg@10']:.4f}")
    console.print(table)
    console.print("dev nDCG@10 by iterations: " + ", ".join(f"{n}: {v:.4f}" for n, v in report.curve.items()))
    gains = Table(title=Text("feature importance (gain)"))
    gains.add_column("feature")
    gains.add_column("gain", justify="right")
    for name, gain in report.importances.items():
        gains.add_row(Text(name), f"{gain:.1f}")
    console.print(gains)
    console.print(f"dev nDCG@10: learned {report.dev['learned']:.4f}, {BASELINE} {report.dev[BASELINE]:.4f}")
    for name, metrics in (report.evaluation or {}).items():
        console.print(f"  {plain(dataset.name)} {report.eval_split} {name}: nDCG@10 {metrics['ndcg@10']:.4f}, "
                      f"Recall@100 {metrics['recall@100']:.4f}, MRR@10 {metrics['mrr@10']:.4f}")
    console.print(f"model in {plain(report.out)}: search with --fusion learned:{plain(report.out)}")
