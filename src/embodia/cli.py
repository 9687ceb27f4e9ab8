"""The `embodia` command: one entry point, a group per stage of the pipeline.

    embodia quickstart                     the main job: data -> train -> eval -> report
    embodia recipe --name NAME             any recipe end to end (quickstart, mt10, micro)
    embodia data generate [--tasks ...]    simulation data engine (Meta-World -> LeRobot v3 + QA)
    embodia data show [--dataset ...]      contact sheet PNG
    embodia data info [--dataset ...]      summary of a dataset
    embodia data stats DIR                 normalisation statistics a dataset lacks
    embodia data merge A B ... --output C  one dataset from several (videos kept as they are)
    embodia depth train-autoencoder ...    latent space for GEM's depth generator (presets)
    embodia serve --checkpoint DIR         serve a policy over WebSocket (openpi protocol)
    embodia export --checkpoint C --output O [--merge]   a serving checkpoint (LoRA merged)
    embodia eval rollout|qa|depth|bench    closed-loop success, embodied QA, depth, benchmarks
    embodia reproduce gem|wall-oss [--budget cpu]   a paper's claims: arms x seeds, one table per claim

Each subcommand's options come from a typed dataclass config (tyro); `--help` lists them.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import tyro

from embodia.configs.data import GenerateConfig, InfoConfig, MergeConfig, ShowConfig, StatsConfig
from embodia.configs.depth import TrainAutoencoderConfig
from embodia.configs.eval import BenchConfig, DepthConfig, QAConfig, RolloutConfig
from embodia.configs.serve import ExportConfig, ServeConfig
from embodia.configs.tokenizer import FitConfig
from embodia.configs.train import TrainConfig
from embodia.pipeline import RecipeRunConfig
from embodia.reproduce.runner import ReproduceConfig, ReproduceGemConfig, ReproduceWallOssConfig


def run_generate(cfg: GenerateConfig) -> None:
    from embodia.data.engine.generate import generate
    from embodia.data.info import print_summary

    out = generate(cfg)
    print_summary(out)


def run_show(cfg: ShowConfig) -> None:
    from embodia.data.show import contact_sheet

    print(f"wrote {contact_sheet(cfg)}")


def run_info(cfg: InfoConfig) -> None:
    from embodia.data.info import print_summary

    print_summary(cfg.dataset)


def run_stats(cfg: StatsConfig) -> None:
    from embodia.data.compute_stats import run_stats as compute

    compute(cfg)


def run_merge(cfg: MergeConfig) -> None:
    from embodia.data.info import print_summary
    from embodia.data.merge import merge

    out = merge(cfg)
    print_summary(out)


def run_fit_cli(cfg: FitConfig) -> None:
    from embodia.models.fast_fit import run_fit

    run_fit(cfg)


def run_serve(cfg: ServeConfig) -> None:
    from embodia.serving.main import serve

    serve(cfg)


def run_export(cfg: ExportConfig) -> None:
    from embodia.export import export

    export(cfg)


def run_train_autoencoder(cfg: TrainAutoencoderConfig) -> None:
    from embodia.models.depth.train_autoencoder import run

    run(cfg)


def run_eval_rollout(cfg: RolloutConfig) -> None:
    from embodia.evaluation.rollout import run_rollouts

    run_rollouts(cfg)


def run_eval_qa(cfg: QAConfig) -> None:
    from embodia.evaluation.qa import run_qa

    run_qa(cfg)


def run_eval_depth(cfg: DepthConfig) -> None:
    from embodia.evaluation.depth import run_depth

    run_depth(cfg)


def run_eval_bench(cfg: BenchConfig) -> None:
    from embodia.evaluation.bench import run_bench

    run_bench(cfg)


def run_reproduce_cli(cfg: ReproduceConfig) -> None:
    from embodia.reproduce.runner import run_reproduce

    run_reproduce(cfg)


def run_recipe_cli(cfg: RecipeRunConfig) -> None:
    from embodia.pipeline import run_recipe

    run_recipe(cfg)


@dataclass
class QuickstartConfig(RecipeRunConfig):
    """The main job: the quickstart recipe end to end (data -> train -> eval -> report).

    Generates 4 MT10 tasks' expert episodes, trains the tiny preset, evaluates it closed loop on
    held-out layouts and on embodied QA, and writes outputs/quickstart/report.md."""


# group -> subcommand -> (config type, runner); a group of None means a top-level command.
COMMANDS: dict[str, dict[str, tuple[type, Callable]]] = {
    "data": {
        "generate": (GenerateConfig, run_generate),
        "show": (ShowConfig, run_show),
        "info": (InfoConfig, run_info),
        "stats": (StatsConfig, run_stats),
        "merge": (MergeConfig, run_merge),
    },
    "tokenizer": {"fit": (FitConfig, run_fit_cli)},
    "depth": {"train-autoencoder": (TrainAutoencoderConfig, run_train_autoencoder)},
    "eval": {
        "rollout": (RolloutConfig, run_eval_rollout),
        "qa": (QAConfig, run_eval_qa),
        "depth": (DepthConfig, run_eval_depth),
        "bench": (BenchConfig, run_eval_bench),
    },
    "reproduce": {
        "gem": (ReproduceGemConfig, run_reproduce_cli),
        "wall-oss": (ReproduceWallOssConfig, run_reproduce_cli),
    },
}


def run_train(cfg: TrainConfig) -> None:
    from embodia.training.trainer import train

    last = train(cfg)
    if last is not None:
        print(f"checkpoint: {last}")


TOP_LEVEL: dict[str, tuple[type, Callable]] = {
    "quickstart": (QuickstartConfig, run_recipe_cli),
    "recipe": (RecipeRunConfig, run_recipe_cli),
    "train": (TrainConfig, run_train),
    "serve": (ServeConfig, run_serve),
    "export": (ExportConfig, run_export),
}


def _usage() -> str:
    lines = ["usage: embodia <command> [options]", "", "commands:"]
    for name, (cfg_type, _) in TOP_LEVEL.items():
        lines.append(f"  {name:<22} {(cfg_type.__doc__ or '').strip().splitlines()[0]}")
    for group, subs in COMMANDS.items():
        for name, (cfg_type, _) in subs.items():
            lines.append(
                f"  {group + ' ' + name:<22} {(cfg_type.__doc__ or '').strip().splitlines()[0]}"
            )
    lines += ["", "Run `embodia <command> --help` for its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    head, rest = argv[0], argv[1:]
    if head in TOP_LEVEL:
        cfg_type, runner = TOP_LEVEL[head]
        prog = f"embodia {head}"
    elif head in COMMANDS:
        subs = COMMANDS[head]
        if not rest or rest[0] not in subs:
            print(f"embodia {head}: choose one of {', '.join(subs)}", file=sys.stderr)
            return 2
        cfg_type, runner = subs[rest[0]]
        prog, rest = f"embodia {head} {rest[0]}", rest[1:]
    else:
        print(f"embodia: unknown command {head!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    cfg = tyro.cli(cfg_type, args=rest, prog=prog, description=cfg_type.__doc__)
    try:
        with _never_silent():
            runner(cfg)
    except (ValueError, FileNotFoundError) as exc:
        # Domain errors (bad task, camera, path, corrupt data) carry a message meant for the user.
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{prog}: stopped ({exc or 'interrupted'})", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        print(f"{prog}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _never_silent():
    """A command never ends silently: a crash in native code (MuJoCo, EGL, torch) prints the
    Python stack, and SIGTERM / SIGHUP unwind like Ctrl-C (finally blocks run, staged output is
    removed, the reason is printed). Restores the previous handlers afterwards."""
    with contextlib.suppress(io.UnsupportedOperation, AttributeError, ValueError):
        faulthandler.enable()  # needs a real stderr file (not one captured by a test runner)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _stop)
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _stop_deferred)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# The signal whose stop waits for the main thread to leave a finalizer.
_deferred_stop: list[str] = []
_STOP_RETRY_S = 0.05


def _stop(signum, frame) -> None:
    """Turn a signal into KeyboardInterrupt, unless it landed inside a finalizer: Python prints and
    drops an exception raised in ``__del__``, so the command would carry on as if never told to stop
    (seen in CI: SIGTERM caught by a library's ``Group.__del__``). Then retry a moment later."""
    name = signal.Signals(signum).name
    if _inside_finalizer(frame):
        _deferred_stop[:] = [name]
        signal.setitimer(signal.ITIMER_REAL, _STOP_RETRY_S)
        return
    _deferred_stop.clear()
    raise KeyboardInterrupt(f"signal {name}")


def _stop_deferred(signum, frame) -> None:
    if _deferred_stop:
        _stop(signal.Signals[_deferred_stop[0]], frame)


def _inside_finalizer(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


if __name__ == "__main__":
    raise SystemExit(main())
