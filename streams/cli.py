"""The ``streamrec`` command line."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

import click
from pydantic import ValidationError

from export.bundle import PRECISIONS
from streams.settings import Settings


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment plus CLI overrides; a clear error if invalid."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise click.UsageError(
            "invalid settings (from STREAMREC_* environment variables or options):\n" + "\n".join(lines)
        ) from None


def _hidden_widths(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """``--hidden 64,32`` as a tuple (click callback)."""
    if value is None:
        return None
    from models.ranker import parse_hidden

    try:
        return parse_hidden(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _shape_options(fn: Any) -> Any:
    """``--rank``, ``--hidden`` and ``--cross-layers``: the shape of a new ranker (default: the default shape)."""
    fn = click.option("--cross-layers", type=click.IntRange(0, 8), default=None,
                      help="DCN-v2 cross layers of the ranker [default: 1]")(fn)
    fn = click.option("--hidden", callback=_hidden_widths, default=None, metavar="W1,W2,...",
                      help="hidden widths of the ranker's MLP [default: 64,32]")(fn)
    return click.option("--rank", type=click.IntRange(1, 256), default=None,
                        help="width of the ranker's user and item projections [default: 16]")(fn)


def _check_partial_addresses(s: Settings) -> None:
    if (s.kafka_bootstrap_servers is None) != (s.redis_url is None):
        missing = "STREAMREC_REDIS_URL" if s.redis_url is None else "STREAMREC_KAFKA_BOOTSTRAP_SERVERS"
        raise click.UsageError(
            f"only one of Kafka and Redis is configured; set {missing} too, "
            "or unset both to run the embedded broker and Redis"
        )


def _require_addresses(s: Settings) -> None:
    if s.kafka_bootstrap_servers is None or s.redis_url is None:
        raise click.UsageError(
            "no Kafka/Redis address configured. Run `streamrec up` in another terminal and export the "
            "STREAMREC_KAFKA_BOOTSTRAP_SERVERS and STREAMREC_REDIS_URL lines it prints, "
            "or point them at your own Kafka and Redis."
        )


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamrec")
def main() -> None:
    """streamrec: a streaming real-time recommender (Kafka events in, fresh recommendations out).

    Settings come from STREAMREC_* environment variables (see the README). With no
    Kafka or Redis address set, `worker`, `up` and `demo` start an embedded broker
    (Tansu) and Redis (Valkey) on loopback and stop them on exit.
    """
    # numpy's BLAS threads fight onnxruntime's and Faust's for the cores and make the small
    # per-batch matrix products much slower under load; set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@main.command()
@click.option("--web-port", type=int, help="port of /metrics and /status (default 6066)")
@click.option("--log-level", default=None, help="debug, info, warning, error")
def worker(web_port: int | None, log_level: str | None) -> None:
    """Run a worker (with embedded servers when no addresses are configured)."""
    from streams.runtime import resolve_addresses
    from streams.topics import TopicMismatch
    from streams.worker import run_worker

    s = _settings(web_port=web_port, log_level=log_level)
    _check_partial_addresses(s)
    _logging(s.log_level)
    with resolve_addresses(s) as resolved:
        if s.embedded:
            click.echo(f"embedded broker {resolved.kafka_bootstrap_servers}, redis {_redis_url(resolved)}", err=True)
        try:
            run_worker(resolved)
        except TopicMismatch as exc:
            raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--web-port", type=int, help="port of /v1/rank, /metrics and /status (default 6066)")
@click.option("--log-level", default=None, help="debug, info, warning, error")
def serve(web_port: int | None, log_level: str | None) -> None:
    """Run a serving replica: /v1/rank from a copy of every user's state, apart from the stream.

    It follows the users table's changelog and the item topics of the workers it is
    pointed at (same STREAMREC_* settings) and answers rank requests itself; start as
    many as the request rate needs. It needs a running broker (set the addresses).
    """
    from streams.replica import run_replica

    s = _settings(web_port=web_port, log_level=log_level)
    _check_partial_addresses(s)
    _require_addresses(s)
    _logging(s.log_level)
    run_replica(s)


def _redis_url(s: Settings) -> str:
    return s.redis_url.get_secret_value() if s.redis_url else ""


@main.command()
@click.option("--no-worker", is_flag=True, help="only run the broker and Redis (start workers yourself)")
@click.option("--web-port", type=int, help="port of the worker's /metrics and /status")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), help="also write the exports here")
def up(no_worker: bool, web_port: int | None, env_file: Path | None) -> None:
    """Start the embedded broker and Redis, create the topics, and run a worker.

    Prints the environment to point other streamrec commands (produce, recs,
    more workers) and your own clients at the embedded servers.
    """
    from streams.runtime import resolve_addresses
    from streams.topics import ensure_topics
    from streams.worker import run_worker

    s = _settings(web_port=web_port)
    if not s.embedded:
        raise click.UsageError(
            "`up` runs the embedded servers, but STREAMREC_KAFKA_BOOTSTRAP_SERVERS or STREAMREC_REDIS_URL is set; "
            "unset them, or use `streamrec worker` against your own Kafka and Redis."
        )
    _logging(s.log_level)
    with resolve_addresses(s) as resolved:
        report = ensure_topics(resolved)
        exports = (
            f"export STREAMREC_KAFKA_BOOTSTRAP_SERVERS={resolved.kafka_bootstrap_servers}\n"
            f"export STREAMREC_REDIS_URL={_redis_url(resolved)}\n"
        )
        click.echo(f"topics: {len(report.created)} created, {len(report.existing)} present")
        click.echo("embedded servers are up; in another shell:\n" + exports, nl=False)
        if env_file:
            env_file.write_text(exports)
        sys.stdout.flush()
        if no_worker:
            click.echo("Ctrl-C stops them.")
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind and stop the servers
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
        run_worker(resolved)


@main.group()
def topics() -> None:
    """Create and inspect the topics (explicit partition counts; never broker auto-creation)."""


@topics.command("create")
def topics_create() -> None:
    """Create every topic with its configured partitions; check existing ones."""
    from streams.topics import TopicMismatch, ensure_topics

    s = _settings()
    _require_addresses(s)
    try:
        report = ensure_topics(s)
    except TopicMismatch as exc:
        raise click.ClickException(str(exc)) from None
    for name in report.created:
        click.echo(f"created  {name}")
    for name in report.existing:
        click.echo(f"present  {name}")


@topics.command("list")
def topics_list() -> None:
    """Show every topic streamrec uses with its expected and actual partitions."""
    from streams.topics import describe_topics, topic_specs

    s = _settings()
    _require_addresses(s)
    actual = describe_topics(s)
    for spec in topic_specs(s):
        have = actual.get(spec.name)
        state = "missing" if have is None else ("ok" if have == spec.partitions else "MISMATCH")
        click.echo(f"{spec.name:48} expected {spec.partitions:3}  actual {have if have is not None else '-':>3}  {state}")


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option(
    "--topic",
    type=click.Choice(["auto", "catalog", "clicks", "searches", "impressions"]),
    default="auto",
    show_default=True,
    help="where to send the lines; auto picks by each line's fields",
)
@click.option("--no-validate", is_flag=True, help="send invalid lines anyway (they end in the DLQ)")
def produce(file: IO[bytes], topic: str, no_validate: bool) -> None:
    """Send JSON-lines events from FILE (or - for stdin) to their topics, keyed correctly."""
    from streams.producer import ProduceError, produce_lines

    s = _settings()
    _require_addresses(s)
    try:
        counts = produce_lines(s, file, topic=topic, validate=not no_validate)
    except ProduceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{n} to {t}" for t, n in counts.items()) or "nothing sent")


@main.command()
@click.argument("user_id")
@click.option("--surface", default="home", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the stored JSON")
def recs(user_id: str, surface: str, as_json: bool) -> None:
    """Print USER_ID's latest recommendations from Redis."""
    import redis

    from agents.refresh import recommendation_from_json

    s = _settings()
    _require_addresses(s)
    assert s.redis_url is not None
    from streams.redis_sink import create_sync_redis_client

    try:
        client = create_sync_redis_client(s.redis_url.get_secret_value(), s.redis_cluster, socket_timeout=5)
        raw = client.get(s.rec_key(user_id, surface))
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise click.ClickException(f"cannot read Redis: {exc}") from None
    if raw is None:
        raise click.ClickException(f"no recommendations for {user_id!r} (surface {surface}) in Redis yet")
    rec = recommendation_from_json(raw)
    if as_json:
        click.echo(json.dumps(rec, indent=2))
        return
    age = time.time() - float(rec["generated_at"])
    click.echo(f"{user_id}: {len(rec['items'])} items, model {rec['model_version']}, {age:.1f}s old")
    for i, item in enumerate(rec["items"], 1):
        click.echo(f"{i:3}. {item['item_id']:24} {item['score']:8.4f}  {item['source']}")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["movielens", "diginetica", "jsonl"]), required=True,
    help="movielens: a RecBole atomic-format folder (.inter, .item); diginetica: the folder with "
    "train-item-views.csv; jsonl: click events (and catalog lines) in streamrec's schema",
)
@click.option("--k", default=10, show_default=True, help="list length")
@click.option("--warmup", default=0.2, show_default=True, help="share of the stream learned before scoring")
@click.option(
    "--batch", type=click.IntRange(min=1), default=None,
    help="events per micro-batch: the product's lists are refreshed after each batch "
    "[default: 1 in process, 200 through the pipeline]",
)
@click.option("--through-pipeline", is_flag=True, help="also run the events through a real worker (Kafka + Redis)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="only the first N events of the stream")
@click.option("--no-product", is_flag=True, help="only the baselines (no encoder start-up)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write {dataset}.json and {dataset}.png (HR over the stream) here")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="also write the figures here")
@click.option("--model", "model", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="a ranker bundle (or a folder of bundles: the newest): report the product ranked by it "
              "next to the product with the blend, on the same candidates (in process; a --through-pipeline "
              "worker ranks with the bundles of its own STREAMREC_RANKER_DIR)")
def evaluate(
    path: Path, fmt: str, k: int, warmup: float, batch: int | None, through_pipeline: bool, limit: int | None,
    no_product: bool, out_dir: Path | None, json_out: Path | None, model: Path | None,
) -> None:
    """Prequential (test-then-train) quality of streamrec's ranking against baselines.

    Replays the events in time order; after the warm-up, every interaction is
    scored against the list each recommender served that user just before it
    (items the user already interacted with left out, ties never in the target's
    favour), then learned. The product runs in process on the same models/ code
    the workers use; with --through-pipeline the same events also go through a
    worker process, and its published lists are scored in the same pass.
    """
    from streams.evaluate_command import EvaluationError, run_evaluate_command

    if through_pipeline and no_product:
        raise click.UsageError("--through-pipeline measures the product: drop --no-product")
    if model is not None and no_product:
        raise click.UsageError("--model ranks the product's candidates: drop --no-product")
    s = _settings()
    if through_pipeline:
        _check_partial_addresses(s)
    try:
        run_evaluate_command(
            s, path, fmt, k=k, warmup=warmup, batch=batch or (200 if through_pipeline else 1),
            through_pipeline=through_pipeline, limit=limit, product=not no_product, out_dir=out_dir,
            json_out=json_out, model=model,
        )
    except EvaluationError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["movielens", "diginetica", "jsonl"]), required=True,
              help="the log's format, as for `streamrec evaluate`")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("ranker.pt"), show_default=True,
              help="checkpoint to write (the input of `streamrec export`)")
@click.option("--share", type=click.FloatRange(0, 1, min_open=True), default=0.2, show_default=True,
              help="train on this leading share of the log (the evaluation's warm-up, so it never scores training data)")
@click.option("--events", type=click.IntRange(min=2), default=None, help="train on the first N events instead of --share")
@click.option("--val-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True,
              help="last share of the training events held out for validation")
@click.option("--negatives", type=click.IntRange(min=1), default=50, show_default=True,
              help="served candidates sampled as negatives per chosen item")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch-groups", type=click.IntRange(min=1), default=128, show_default=True,
              help="chosen items (with their negatives) per optimiser step")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="PyTorch CPU threads")
@click.option("--export-to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="also export the model as a new bundle in this folder (as `streamrec export`)")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="with --export-to: the bundle's precision (as `streamrec export --precision`)")
@_shape_options
def train(path: Path, fmt: str, out: Path, share: float, events: int | None, val_share: float, negatives: int,
          epochs: int, batch_groups: int, lr: float, seed: int, threads: int, export_to: Path | None,
          precision: str, rank: int | None, hidden: tuple[int, ...] | None, cross_layers: int | None) -> None:
    """Train the learned ranker from an event log (replayed in time order, no look-ahead).

    The log is replayed through the same code the workers run; every refresh's
    candidates, with their features as they were then, are labelled by the user's next
    item: the chosen item (when served) against sampled served candidates. Reports
    validation HR@10 and AUC (and the blend's on the same events). Deterministic for a seed.
    """
    from streams.train_command import TrainError, run_train_command

    try:
        run_train_command(_settings(), path, fmt, out=out, share=share, events=events, val_share=val_share,
                          negatives=negatives, epochs=epochs, batch_groups=batch_groups, lr=lr, seed=seed,
                          threads=threads, export_to=export_to, precision=precision, rank=rank, hidden=hidden,
                          cross_layers=cross_layers)
    except TrainError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "bundles", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="bundles folder [default: STREAMREC_RANKER_DIR, else <model dir>/rankers]")
@click.option("--tolerance", type=click.FloatRange(min=0), default=None,
              help="largest |onnxruntime - PyTorch| allowed on a score [default: 1e-4; 0.5 with --precision int8]")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="int8: the pair scorer's dense layers as int8, faster on a CPU (GPU workers want float32)")
def export_command(checkpoint: Path, bundles: Path | None, tolerance: float | None, precision: str) -> None:
    """Export a trained ranker to ONNX as a new, versioned bundle, checked against PyTorch.

    onnxruntime must match PyTorch on random and real inputs within the tolerance, or
    nothing is written. Workers pick the newest bundle up without a restart.
    """
    from streams.train_command import TrainError, run_export_command

    target = bundles or _settings().resolved_ranker_dir
    try:
        run_export_command(checkpoint, target, tolerance, precision=precision)
    except TrainError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--users", default=40, show_default=True, help="simulated shoppers")
@click.option("--events", default=4000, show_default=True, help="click and search events to stream")
@click.option("--rate", default=300.0, show_default=True, help="offered events per second")
@click.option("--seed", default=7, show_default=True)
@click.option("--show", default=6, show_default=True, help="users to show at the end")
def demo(users: int, events: int, rate: float, seed: int, show: int) -> None:
    """Stream simulated shoppers through the embedded broker and show their recommendations."""
    from streams.demo.run import DemoError, run_demo

    s = _settings()
    _check_partial_addresses(s)
    try:
        run_demo(s, n_users=users, n_events=events, rate=rate, seed=seed, show=show)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None


@main.group(invoke_without_command=True)
@click.pass_context
@click.option("--mode", type=click.Choice(["live", "catchup", "all"]), default="all", show_default=True,
              help="live: fixed offered rates; catchup: a backlog produced before the worker starts")
@click.option("--rates", default="500,2000,5000,10000", show_default=True,
              help="offered events/s for live mode, comma-separated")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="how long each rate is offered")
@click.option("--events", type=click.IntRange(min=1), default=300_000, show_default=True,
              help="click events in the catch-up backlog")
@click.option("--users", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="users the events are spread over (uniformly)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results"),
              show_default=True, help="folder for bench.json, bench.png, bench.md and the logs")
@click.option("--skip-echo", is_flag=True, help="do not run the echo reference")
@click.option("--broker", help="Kafka host:port[,host:port] (default: STREAMREC_KAFKA_BOOTSTRAP_SERVERS, else embedded)")
@click.option("--redis", "redis_url", help="redis://[:password@]host:port/db (default: STREAMREC_REDIS_URL, else embedded)")
@click.option("--drain-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="longest wait after a rate for the backlog to be worked off (higher rates are skipped after)")
@click.option("--text-only-catalog", is_flag=True,
              help="publish the demo catalog without images (quicker set-up; events never use images)")
@click.option("--seed", default=7, show_default=True)
def bench(ctx: click.Context, mode: str, rates: str, seconds: float, events: int, users: int, out: Path,
          skip_echo: bool, broker: str | None, redis_url: str | None, drain_timeout: float, text_only_catalog: bool,
          seed: int) -> None:
    """Measure one worker's throughput, latency, CPU and memory against a bare echo.

    Live: load at fixed offered rates, event-to-Redis latency p50/p95/p99, refreshes/s,
    lag. Catch-up: how fast a fresh worker works off a backlog. The echo reference
    (consume, coalesce per user, pipelined SET) runs the same load on the same broker
    and Redis; every figure is also given as a ratio to it. Writes bench.json, bench.png
    and bench.md under --out and prints the Markdown table.

    `streamrec bench scoring` measures the learned ranker's scoring throughput instead, and
    `streamrec bench retrieval` candidate generation's nearest-item search.
    """
    if ctx.invoked_subcommand is not None:
        return  # `streamrec bench scoring ...`: the subcommand runs on its own
    from rich.console import Console

    from streams.bench.preflight import BenchError, parse_rates
    from streams.bench.run import BenchConfig, run_bench

    try:
        offered = parse_rates(rates)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rates") from None
    s = _settings(kafka_bootstrap_servers=broker, redis_url=redis_url)
    if (s.kafka_bootstrap_servers is None) != (s.redis_url is None):
        given, missing = ("--broker", "--redis") if s.redis_url is None else ("--redis", "--broker")
        raise click.UsageError(
            f"only one of Kafka and Redis is configured ({given} or its STREAMREC_* variable); give {missing} too, "
            "or neither to benchmark on the embedded broker and Redis"
        )
    config = BenchConfig(mode=mode, rates=offered, seconds=seconds, events=events, users=users,  # type: ignore[arg-type]
                         echo=not skip_echo, out=out, seed=seed, drain_timeout_s=drain_timeout,
                         catalog_images=not text_only_catalog)
    command = "streamrec " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "streamrec bench"
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop every process started
    try:
        run_bench(s, config, Console(), command=command)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@bench.command("scoring")
@click.option("--batches", default=",".join(str(b) for b in (1, 8, 64, 256, 1024, 4096, 8192)), show_default=True,
              help="candidate pairs per scoring call, comma-separated")
@click.option("--items", type=click.IntRange(min=1), default=10_000, show_default=True, help="items in the catalog")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="interleaved rounds (onnxruntime and PyTorch alternate which goes first)")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=0.4, show_default=True,
              help="time per engine, batch size and round")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads per engine")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="a `streamrec train` checkpoint (default: an untrained ranker of the default shape, or of "
                   "--rank, --hidden and --cross-layers)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results/scoring"),
              show_default=True, help="folder for scoring.json, scoring.md and scoring.png")
@click.option("--profile-calls", type=click.IntRange(min=0), default=0, show_default=True,
              help="also run onnxruntime's pair scorer this many times per batch size under its profiler and "
                   "report its time by operator, and the ceiling the matrix products put on ORT ÷ eager (0: off)")
@_shape_options
def bench_scoring(batches: str, items: int, rounds: int, seconds: float, threads: int, checkpoint: Path | None,
                  out: Path, profile_calls: int, rank: int | None, hidden: tuple[int, ...] | None,
                  cross_layers: int | None) -> None:
    """Candidates scored per second by the ranker: onnxruntime against PyTorch eager.

    Same inputs, same threads, measured interleaved at each batch size; on a machine
    with a CUDA provider also onnxruntime on the GPU with I/O binding.
    """
    from streams.bench.scoring import (
        ScoringBenchConfig,
        parse_batches,
        run_scoring_bench,
    )

    try:
        sizes = parse_batches(batches)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--batches") from None
    shape = {k: v for k, v in (("rank", rank), ("hidden", hidden), ("cross_layers", cross_layers)) if v is not None}
    if shape and checkpoint is not None:
        raise click.UsageError("--rank, --hidden and --cross-layers shape an untrained ranker; a --checkpoint "
                               "brings its own shape: give one or the other")
    config = ScoringBenchConfig(batch_sizes=sizes, items=items, rounds=rounds, seconds=seconds, threads=threads,
                                checkpoint=checkpoint, out=out, profile_calls=profile_calls, shape=shape)
    command = "streamrec " + " ".join(sys.argv[1:]) if sys.argv[1:3] == ["bench", "scoring"] else "streamrec bench scoring"
    results = run_scoring_bench(config, click.echo, command=command)
    click.echo(markdown_of(results))
    click.echo(f"wrote {out / 'scoring.json'}, {out / 'scoring.md'} and {out / 'scoring.png'}")


@bench.command("retrieval")
@click.option("--items", "catalogs", default=",".join(str(n) for n in (10_000, 100_000)), show_default=True,
              help="catalog sizes, comma-separated")
@click.option("--users", default=",".join(str(n) for n in (1, 8, 64, 512)), show_default=True,
              help="users per micro-batch (one candidate-generation call), comma-separated")
@click.option("--per-source", type=click.IntRange(min=1), default=100, show_default=True,
              help="candidates asked of each source (interest, search)")
@click.option("--dim", type=click.IntRange(min=1), default=512, show_default=True, help="item vector dimensions")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="interleaved rounds (the engines alternate which goes first)")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=0.4, show_default=True,
              help="time per engine, size and round")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="threads for numpy's BLAS and for onnxruntime")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results/retrieval"),
              show_default=True, help="folder for retrieval.json and retrieval.md")
def bench_retrieval(catalogs: str, users: str, per_source: int, dim: int, rounds: int, seconds: float,
                    threads: int, out: Path) -> None:
    """Candidate generation per micro-batch: nearest-item retrieval in numpy against onnxruntime.

    Times the whole candidate-generation call with each engine, interleaved, and checks
    that they find the same candidates; on a machine with a CUDA provider also
    onnxruntime on the GPU with the item matrix resident there.
    """
    from streams.bench.retrieval import RetrievalBenchConfig, markdown, run_retrieval_bench
    from streams.bench.scoring import parse_batches

    try:
        sizes = parse_batches(catalogs, "catalog sizes")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--items") from None
    try:
        batches = parse_batches(users, "users per call")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--users") from None
    config = RetrievalBenchConfig(catalog_sizes=sizes, user_batches=batches, per_source=per_source, dim=dim,
                                  rounds=rounds, seconds=seconds, threads=threads, out=out)
    command = ("streamrec " + " ".join(sys.argv[1:]) if sys.argv[1:3] == ["bench", "retrieval"]
               else "streamrec bench retrieval")
    results = run_retrieval_bench(config, click.echo, command=command)
    click.echo(markdown(results))
    if not all(r["same_candidates"] for r in results["rows"]):
        raise click.ClickException("the engines found different candidates (see the table); report this as a bug")
    click.echo(f"wrote {out / 'retrieval.json'} and {out / 'retrieval.md'}")


@bench.command("rank")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=200.0, show_default=True,
              help="rank requests per second, open loop")
@click.option("--items", type=click.IntRange(min=1), default=100, show_default=True, help="items per request")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="measured time (after --warmup)")
@click.option("--warmup", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="seconds of requests sent first and not counted")
@click.option("--event-rate", type=click.FloatRange(min=0, min_open=True), default=2000.0, show_default=True,
              help="click events per second offered to the stream meanwhile")
@click.option("--users", type=click.IntRange(min=1), default=5000, show_default=True,
              help="users of the events and of the requests")
@click.option("--query-share", type=click.FloatRange(min=0, max=1), default=0.0, show_default=True,
              help="share of requests that carry a search query (embedded by the worker)")
@click.option("--broker", help="Kafka host:port[,host:port] (default: STREAMREC_KAFKA_BOOTSTRAP_SERVERS, else embedded)")
@click.option("--redis", "redis_url", help="redis://[:password@]host:port/db (default: STREAMREC_REDIS_URL, else embedded)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results/rank"),
              show_default=True, help="folder for rank.json and the logs")
@click.option("--seed", default=7, show_default=True)
@click.option("--target", type=click.Choice(["replica", "worker"]), default="replica", show_default=True,
              help="who answers: a serving replica (`streamrec serve`) beside the worker, or the worker itself")
@click.option("--worker-nice", type=click.IntRange(0, 19), default=0, show_default=True,
              help="run the stream worker at this nice(1) value, so the replica has CPU priority "
                   "(as when replicas get their own cores)")
@click.option("--serving-cpus", metavar="LIST",
              help="run the answering process and this benchmark's client on these CPUs (e.g. 1, or 2-3) and the "
                   "broker, Redis, worker and load generator on the others, as when replicas have cores of their own "
                   "(default: every process shares every CPU)")
def bench_rank(rate: float, items: int, seconds: float, warmup: float, event_rate: float, users: int,
               query_share: float, broker: str | None, redis_url: str | None, out: Path, seed: int,
               target: str, worker_nice: int, serving_cpus: str | None) -> None:
    """Latency of POST /v1/rank (p50/p99) while the event stream runs through one worker."""
    from streams.bench.cpus import CpuSetError, parse_cpus, split_cpus
    from streams.bench.preflight import BenchError
    from streams.bench.rank import RankBenchConfig, run_rank_bench

    cpus = None
    if serving_cpus is not None:
        try:
            cpus, _ = split_cpus(parse_cpus(serving_cpus))
        except CpuSetError as exc:
            raise click.BadParameter(str(exc), param_hint="--serving-cpus") from None
    s = _settings(kafka_bootstrap_servers=broker, redis_url=redis_url)
    _check_partial_addresses(s)
    config = RankBenchConfig(rate=rate, items=items, seconds=seconds, warmup_s=warmup, event_rate=event_rate,
                             users=users, query_share=query_share, out=out, seed=seed, target=target,
                             worker_nice=worker_nice, serving_cpus=cpus)
    command = "streamrec " + " ".join(sys.argv[1:]) if sys.argv[1:3] == ["bench", "rank"] else "streamrec bench rank"
    try:
        run_rank_bench(s, config, click.echo, command=command)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out / 'rank.json'}")


def markdown_of(results: dict[str, object]) -> str:
    """The scoring bench's Markdown table."""
    from streams.bench.scoring import markdown

    return markdown(results)


@main.command()
@click.option("--group", help="consumer group (default: STREAMREC_APP_ID, the workers' group)")
@click.option("--topic", "topics", multiple=True, help="topic to report (repeatable; default: the workers' input topics)")
@click.option("--max-lag", type=click.IntRange(min=0), help="exit 3 when the total lag exceeds this many records")
@click.option("--max-lag-seconds", type=click.FloatRange(min=0), help="exit 3 when any partition's oldest unprocessed event is older")
@click.option("--watch", is_flag=True, help="print again every --interval seconds until Ctrl-C")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True)
@click.option("--count", type=click.IntRange(min=1), help="with --watch: stop after this many readings")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per reading")
def lag(group: str | None, topics: tuple[str, ...], max_lag: int | None, max_lag_seconds: float | None, watch: bool,
        interval: float, count: int | None, as_json: bool) -> None:
    """Print the consumer group's lag per partition, like `kafka-consumer-groups --describe`.

    LAG is the log end offset minus the committed offset; LAG-SECONDS is the age of
    the oldest unprocessed event (its Kafka timestamp). Exit status: 0 within the
    thresholds, 3 over --max-lag or --max-lag-seconds, 1 when the lag cannot be read.
    """
    from streams.lag import LagError, input_topics
    from streams.lag_command import Thresholds, run_lag

    s = _settings()
    _require_addresses(s)
    try:
        status = run_lag(
            s, group or s.app_id, list(topics) or input_topics(s), Thresholds(max_lag, max_lag_seconds), click.echo,
            watch=watch, interval=interval, count=count, as_json=as_json,
        )
    except LagError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        status = 0
    sys.exit(status)


@main.command()
@click.argument("user_id")
def forget(user_id: str) -> None:
    """Erase USER_ID everywhere: state in every table and its changelog, Redis, published lists.

    The request travels through Kafka (a tombstone on the user's clicks partition), so the
    worker that owns the user erases it, and it survives worker restarts.
    """
    import redis

    from streams.forget_command import ForgetError, check_user_id, send_forget

    s = _settings()
    _require_addresses(s)
    try:
        check_user_id(user_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="USER_ID") from None
    assert s.redis_url is not None
    from streams.redis_sink import create_sync_redis_client

    try:
        client = create_sync_redis_client(s.redis_url.get_secret_value(), s.redis_cluster, socket_timeout=5,
                                          socket_connect_timeout=5)
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        client = None  # unreachable: the worker deletes the lists
    try:
        receipt = send_forget(s, user_id, client)
    except ForgetError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if client is not None:
            client.close()
    click.echo(f"forget request for {user_id!r} in {receipt.topic}[{receipt.partition}]@{receipt.offset}; "
               + ("Redis list deleted" if receipt.redis_deleted else "Redis unreachable: the worker deletes the list"))


@main.command("redis-rebuild")
@click.option("--overwrite", is_flag=True, help="replace every key (default: only keys Redis does not have)")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="seconds to read the recommendations topic to its end")
def redis_rebuild(overwrite: bool, timeout: float) -> None:
    """Restore every user's latest list in Redis from the recommendations topic (after Redis lost data)."""
    from streams.redis_rebuild import RebuildError, rebuild_redis
    from streams.redis_sink import create_sync_redis_client

    s = _settings()
    _require_addresses(s)
    assert s.redis_url is not None
    client = create_sync_redis_client(
        s.redis_url.get_secret_value(), s.redis_cluster, socket_timeout=30, socket_connect_timeout=5
    )
    try:
        report = rebuild_redis(s, client, overwrite=overwrite, timeout_s=timeout)
    except RebuildError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    click.echo(str(report))


@main.command()
@click.argument("log", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", default="uniform", show_default=True,
              help="policy to evaluate: uniform, arm:NAME (always NAME) or logged (each line's target_propensity)")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True)
@click.option("--bootstrap", "resamples", type=click.IntRange(min=0), default=0, show_default=True,
              help="also percentile-bootstrap intervals with this many resamples")
@click.option("--seed", default=0, show_default=True, help="seed of the bootstrap")
@click.option("--json", "as_json", is_flag=True, help="print the estimates as JSON")
def ope(log: Path, target: str, confidence: float, resamples: int, seed: int, as_json: bool) -> None:
    """Estimate another policy's click rate from a JSON-lines log of decisions (IPS and SNIPS).

    Each line: arm, reward (0/1), propensity (the logging policy's probability of
    that arm), optional arms (the available ones) and target_propensity. See the README.
    """
    from streams.ope_command import OpeError, format_report, run_ope

    try:
        result = run_ope(log, target, confidence, resamples, seed)
    except OpeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, indent=1) if as_json else format_report(result))


@main.command("ope-log")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--window", "window_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="seconds a click counts for its impression (default: STREAMREC_FEEDBACK_WINDOW_S)")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="seconds to read each topic to its end")
def ope_log(out: Path, window_s: float | None, timeout: float) -> None:
    """Write the workers' shown exploration decisions and their rewards to OUT, for `streamrec ope OUT`.

    Joins the recommendations topic (each exploration slot's source, propensity and
    arms) with the site's impressions and the clicks carrying the list's request_id.
    """
    from streams.ope_log import OpeLogError, write_ope_log

    s = _settings()
    if s.kafka_bootstrap_servers is None:
        raise click.UsageError(
            "no Kafka address configured: export STREAMREC_KAFKA_BOOTSTRAP_SERVERS (the line `streamrec up` "
            "prints, or your own Kafka) so the recommendations, impressions and clicks topics can be read."
        )
    try:
        counts = write_ope_log(s, out, window_s or s.feedback_window_s, timeout)
    except OpeLogError as exc:
        raise click.ClickException(str(exc)) from None
    left = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items())
                     if k not in ("decisions", "clicked") and n)
    click.echo(f"wrote {counts['decisions']} shown exploration decisions ({counts['clicked']} clicked) to {out}"
               + (f"; left out: {left}" if left else ""))


@bench.command("bandit")
@click.option("--rounds", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--items", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--initial-items", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--arrival-every", type=click.IntRange(min=1), default=1000, show_default=True,
              help="rounds between two new items")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results/bandit"),
              show_default=True, help="folder for bandit.json and bandit.png")
def bench_bandit(rounds: int, items: int, initial_items: int, arrival_every: int, seed: int, out: Path) -> None:
    """Cumulative regret of the bandit policies on a simulated shop with known click probabilities."""
    from export.bandit_sim import SimConfig, markdown, run_simulation, write_results

    if initial_items > items:
        raise click.BadParameter("must not exceed --items", param_hint="--initial-items")
    results = run_simulation(SimConfig(rounds=rounds, n_items=items, initial_items=initial_items,
                                       arrival_every=arrival_every, seed=seed))
    js, png = write_results(results, out)
    click.echo(markdown(results))
    click.echo(f"wrote {js} and {png}")


if __name__ == "__main__":  # pragma: no cover
    main()
