"""Command line: ``python -m pipeline <command>`` (also ``srloss <command>``).

Every command that reads params accepts ``--params PATH`` and repeated ``--set key=value``
overrides (the same syntax as ``dvc exp run -S``). Errors meant for people are printed as one
line and exit with status 2; nothing else is printed on failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from pipeline.errors import PipelineError, os_error_sentence
from pipeline.redact import redact_logs, redact_text

log = logging.getLogger("pipeline")


def _load(args: argparse.Namespace):
    """The params of a command that reads no network, objective or decode names (prepare, degrade)."""
    from pipeline.config import load_params

    return load_params(args.params, args.overrides)


def _load_checked(args: argparse.Namespace):
    """The params, with the names of networks, objectives and decodes checked against the registries."""
    from pipeline.params_check import check_registries

    params = _load(args)
    check_registries(params)
    return params


def cmd_prepare(args: argparse.Namespace) -> None:
    from pipeline.data.prepare import prepare_all

    _print_summary(prepare_all(_load(args), progress=not args.quiet))


def cmd_degrade(args: argparse.Namespace) -> None:
    from pipeline.degrade.run import degrade_all

    _print_summary(degrade_all(_load(args)))


def cmd_bicubic(args: argparse.Namespace) -> None:
    from pipeline.bicubic import bicubic_baseline

    if args.scale < 2:
        raise PipelineError(f"--scale must be an integer >= 2 (got {args.scale})")
    result = bicubic_baseline(Path(args.hr_dir), args.scale, crop_border=args.crop_border, y_channel=not args.rgb)
    if not args.per_image:
        result.pop("per_image", None)
    print(json.dumps(result))


def _tracking_callbacks(params) -> list:
    """An MLflow callback when tracking is on; an unreachable server fails here, before training."""
    if not params.tracking.enabled:
        return []
    from pipeline.tracking.callback import MLflowCallback
    from pipeline.tracking.store import check_tracking, tracking_uri

    check_tracking(tracking_uri(params))
    return [MLflowCallback()]


def default_run_name(params) -> str:
    """``<model>-<objective>-seed<seed>``: plain ``train`` calls with different settings never share a folder."""
    return f"{params.model.name}-{params.loss.objective}-seed{params.seed}"


def cmd_train(args: argparse.Namespace) -> None:
    from pipeline.train.loop import fit
    from pipeline.train.run_folder import refuse_finished_run

    params = _load_checked(args)
    run_dir = Path(args.run_dir).resolve() if args.run_dir else params.runs_dir / default_run_name(params)
    resume = run_dir / "checkpoints" / "last.pt" if args.resume else None
    if resume is not None and not resume.is_file():
        raise PipelineError(f"--resume: no checkpoint at '{resume}'; start without --resume or pass the --run-dir of the run")
    if args.resume and args.overwrite:
        raise PipelineError("--resume continues a run and --overwrite replaces it; pass only one of them")
    if resume is None and not args.overwrite:
        refuse_finished_run(run_dir)  # before the tracking check and run: nothing is started for a refused run
    result = fit(params, run_dir, callbacks=_tracking_callbacks(params), resume=resume, overwrite=args.overwrite)
    _print_summary({"best_metric": result.best_metric, "best_iteration": result.best_iteration,
                    "final_metrics": result.final_metrics, "best_checkpoint": str(result.best_checkpoint)})


def cmd_sweep(args: argparse.Namespace) -> None:
    from pipeline.tune.sweep import run_sweep

    _print_summary(run_sweep(_load_checked(args), resume=args.resume))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline.report.evaluate import evaluate_all

    _print_summary(evaluate_all(_load_checked(args), progress=not args.quiet))


def cmd_upscale(args: argparse.Namespace) -> None:
    from pipeline.upscale import upscale_paths

    written = upscale_paths(args.model, args.scale, [Path(p) for p in args.inputs], Path(args.output),
                            tile=args.tile, overlap=args.overlap, device=args.device,
                            architecture=args.architecture, tracking_uri=args.tracking_uri, progress=not args.quiet)
    print(f"wrote {len(written)} image(s) to {args.output}")


def cmd_models(args: argparse.Namespace) -> None:
    from pipeline.models.summary import summary_table

    print(summary_table(args.scale))


def cmd_config(args: argparse.Namespace) -> None:
    import yaml

    if args.reference or args.options:
        from pipeline import config_reference, options_reference

        if args.reference:
            default, make, write = config_reference.REFERENCE_FILE, config_reference.config_reference, \
                config_reference.write_reference
        else:
            default, make, write = options_reference.OPTIONS_FILE, options_reference.options_reference, \
                options_reference.write_options
        if args.write:
            target = Path(default if args.write is True else args.write)
            print(f"{target}: {'updated' if write(target) else 'already up to date'}")
        else:
            print(make())
        return
    print(yaml.safe_dump(_load_checked(args).model_dump(mode="json"), sort_keys=False), end="")


def _print_summary(summary: dict) -> None:
    """The command's result as one line of JSON on stdout (people read the log on stderr and the files)."""
    print(json.dumps(summary, default=str))


def _with_params(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--params", default=None, help="params file (default: the project's params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param, e.g. --set train.lr=2e-4 (repeatable)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable, help: str, params: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return _with_params(p) if params else p

    add("prepare", cmd_prepare, "write HR train/val images and benchmark sets under data/")
    add("degrade", cmd_degrade, "make LR images (MATLAB-exact bicubic + presets) under data/lr/")
    b = add("bicubic", cmd_bicubic, "score bicubic upscaling on a folder of HR images (JSON on stdout)", params=False)
    b.add_argument("--hr-dir", required=True, help="folder of HR images")
    b.add_argument("--scale", type=int, required=True, help="integer scale >= 2")
    b.add_argument("--crop-border", type=int, default=None, help="pixels cropped per side (default: the scale)")
    b.add_argument("--rgb", action="store_true", help="score RGB instead of the Y channel")
    b.add_argument("--per-image", action="store_true", help="include per-image values")
    t = add("train", cmd_train, "train one network with one objective (tracked in MLflow)")
    t.add_argument("--run-dir", default=None,
                   help="where checkpoints go (default: <runs_dir>/<model>-<objective>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoints/last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace the checkpoints of an earlier run in --run-dir")
    s = add("sweep", cmd_sweep, "run the Ray Tune sweep declared under 'sweep' in params")
    s.add_argument("--resume", action="store_true", help="resume an interrupted sweep (Tuner.restore)")
    add("evaluate", cmd_evaluate, "score the sweep's best models on the benchmarks; write results/")
    u = add("upscale", cmd_upscale, "super-resolve images or folders with a trained model", params=False)
    u.add_argument("inputs", nargs="+", help="image files or folders")
    u.add_argument("--model", required=True,
                   help="checkpoint (.pt) or MLflow model URI (runs:/<id>/<objective>-seed<seed>)")
    u.add_argument("--scale", type=int, required=True, help="the scale the model was trained for")
    u.add_argument("-o", "--output", required=True, help="output folder for PNGs")
    u.add_argument("--tile", type=int, default=256, help="LR tile side (bounds memory)")
    u.add_argument("--overlap", type=int, default=16, help="LR pixels of overlap between tiles")
    u.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    u.add_argument("--architecture", default=None, help="refuse a model of another network (e.g. edsr)")
    u.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for runs:/ and models:/ URIs")
    m = add("models", cmd_models, "list the networks with parameter counts and FLOPs", params=False)
    m.add_argument("--scale", type=int, default=2)
    c = add("config", cmd_config, "print the resolved params (defaults filled in, overrides applied)")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--reference", action="store_true", help="print the configuration reference (markdown)")
    which.add_argument("--options", action="store_true",
                       help="print the options of every objective, loss term and network (markdown)")
    c.add_argument("--write", metavar="FILE", nargs="?", const=True,
                   help="with --reference or --options: replace the generated block in FILE "
                        "(default docs/configuration.md or docs/options.md)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redact_logs()  # credentials in URIs never reach the terminal or a log file
    try:
        args.handler(args)
    except PipelineError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a file removed underneath us
        print(f"error: {redact_text(os_error_sentence(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished checkpoints and outputs are kept", file=sys.stderr)
        return 130
    return 0
