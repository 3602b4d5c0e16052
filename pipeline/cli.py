"""Command line: ``python -m pipeline <command>`` (also ``srloss <command>``).

Every command that reads params accepts ``--params PATH`` and repeated ``--set key=value``
overrides (the same syntax as ``dvc exp run -S``). Errors meant for people are printed as one
line and exit with status 2; nothing else is printed on failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Sequence

from pipeline.errors import PipelineError, os_error_sentence
from pipeline.interrupt import Interrupted, StopSignals, end_with_parent
from pipeline.own_session import in_own_session, run_in_own_session
from pipeline.redact import redact_logs, redact_text

log = logging.getLogger("pipeline")


def _load(args: argparse.Namespace):
    """The params of a command that reads no network, objective or decode names (prepare, degrade)."""
    from pipeline.params_file import load_params

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
    if args.init_from:
        from pipeline.config import absolute_source

        params.train.init_from = absolute_source(args.init_from, Path.cwd())
    run_dir = Path(args.run_dir).resolve() if args.run_dir else params.runs_dir / default_run_name(params)
    resume = run_dir / "checkpoints" / "last.pt" if args.resume else None
    if resume is not None and not resume.is_file():
        raise PipelineError(f"--resume: no checkpoint at '{resume}'; start without --resume or pass the --run-dir of the run")
    if args.resume and args.overwrite:
        raise PipelineError("--resume continues a run and --overwrite replaces it; pass only one of them")
    if resume is None and not args.overwrite:
        refuse_finished_run(run_dir)  # before the tracking check and run: nothing is started for a refused run
    args.run_dir = str(run_dir)  # for the sentence of an interrupted run
    result = fit(params, run_dir, callbacks=_tracking_callbacks(params), resume=resume, overwrite=args.overwrite,
                 stop=args.signals)
    _print_summary({"best_metric": result.best_metric, "best_iteration": result.best_iteration,
                    "final_metrics": result.final_metrics, "best_checkpoint": str(result.best_checkpoint)})


def cmd_sweep(args: argparse.Namespace) -> None:
    from pipeline.tune.sweep import run_sweep

    _print_summary(run_sweep(_load_checked(args), resume=args.resume, signals=args.signals))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline.report.evaluate import evaluate_all

    _print_summary(evaluate_all(_load_checked(args), progress=not args.quiet))


def cmd_upscale(args: argparse.Namespace) -> None:
    from pipeline.upscale import upscale_paths

    written = upscale_paths(args.model, args.scale, [Path(p) for p in args.inputs], Path(args.output),
                            tile=args.tile, overlap=args.overlap, device=args.device,
                            architecture=args.architecture, tracking_uri=args.tracking_uri, progress=not args.quiet,
                            self_ensemble=args.self_ensemble)
    print(f"wrote {len(written)} image(s) to {args.output}")


def cmd_score(args: argparse.Namespace) -> None:
    from pipeline.score import score_model

    summary = score_model(_load(args), args.model, Path(args.hr_dir), Path(args.output), scale=args.scale,
                          lr_dir=Path(args.lr_dir) if args.lr_dir else None, tile=args.tile, overlap=args.overlap,
                          device=args.device, self_ensemble=args.self_ensemble, tracking_uri=args.tracking_uri)
    _print_summary(summary)


def cmd_export(args: argparse.Namespace) -> None:
    from pipeline.export import FORMATS, export_model

    _print_summary(export_model(args.model, Path(args.output), tuple(args.formats or FORMATS),
                                tracking_uri=args.tracking_uri))


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


def cmd_weights(args: argparse.Namespace) -> None:
    from pipeline.metrics.weights import DEFAULT, fetch_weights

    _print_summary(fetch_weights(args.names or list(DEFAULT), args.base_url, progress=not args.quiet))


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
    _add_data_commands(sub)
    _add_study_commands(sub)
    _add_model_commands(sub)
    _add_setup_commands(sub)
    return parser


def _add_command(sub: argparse._SubParsersAction, name: str, handler: Callable, help: str,
                 params: bool = True) -> argparse.ArgumentParser:
    """The subcommand ``name`` run by ``handler``; with ``params``, it takes ``--params`` and ``--set``."""
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(handler=handler)
    return _with_params(p) if params else p


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    """prepare, degrade and bicubic: the images and their baseline."""
    _add_command(sub, "prepare", cmd_prepare, "write HR train/val images and benchmark sets under data/")
    _add_command(sub, "degrade", cmd_degrade, "make LR images (MATLAB-exact bicubic + presets) under data/lr/")
    b = _add_command(sub, "bicubic", cmd_bicubic, "score bicubic upscaling on a folder of HR images (JSON on stdout)",
                     params=False)
    b.add_argument("--hr-dir", required=True, help="folder of HR images")
    b.add_argument("--scale", type=int, required=True, help="integer scale >= 2")
    b.add_argument("--crop-border", type=int, default=None, help="pixels cropped per side (default: the scale)")
    b.add_argument("--rgb", action="store_true", help="score RGB instead of the Y channel")
    b.add_argument("--per-image", action="store_true", help="include per-image values")


def _add_study_commands(sub: argparse._SubParsersAction) -> None:
    """train, sweep and evaluate: one run, the study's sweep and its report."""
    t = _add_command(sub, "train", cmd_train, "train one network with one objective (tracked in MLflow)")
    t.add_argument("--run-dir", default=None,
                   help="where checkpoints go (default: <runs_dir>/<model>-<objective>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoints/last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace the checkpoints of an earlier run in --run-dir")
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from these weights (train.init_from): a checkpoint, models/<objective>, an MLflow "
                        "model URI, or a .pth/.safetensors state dict")
    s = _add_command(sub, "sweep", cmd_sweep, "run the Ray Tune sweep declared under 'sweep' in params")
    s.add_argument("--resume", nargs="?", const="always", choices=("always", "auto"), default="never",
                   help="resume an interrupted sweep (Tuner.restore); 'auto': resume the sweep folder's unfinished "
                        "sweep of the same params, else start a new one (what dvc.yaml and SLURM jobs use)")
    _add_command(sub, "evaluate", cmd_evaluate, "score the sweep's best models on the benchmarks; write results/")


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    """upscale, score, export and models: what a trained model (or a network) is used for."""
    u = _add_command(sub, "upscale", cmd_upscale, "super-resolve images or folders with a trained model", params=False)
    u.add_argument("inputs", nargs="+", help="image files or folders")
    u.add_argument("--model", required=True,
                   help="checkpoint (.pt), a models/<objective> folder, or MLflow model URI "
                        "(runs:/<id>/<objective>-seed<seed>)")
    u.add_argument("--scale", type=int, default=None,
                   help="optional check: refuse a model trained for another scale (default: the model's scale)")
    u.add_argument("-o", "--output", required=True, help="output folder for PNGs")
    u.add_argument("--tile", type=int, default=256, help="LR tile side (bounds memory)")
    u.add_argument("--overlap", type=int, default=16, help="LR pixels of overlap between tiles")
    u.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    u.add_argument("--architecture", default=None, help="refuse a model of another network (e.g. edsr)")
    u.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for runs:/ and models:/ URIs")
    u.add_argument("--self-ensemble", action="store_true",
                   help="average the SR images of the 8 flips/rotations of each input (8 times the compute)")
    r = _add_command(sub, "score", cmd_score, "score any trained model on a folder of HR images (or LR/HR pairs): "
                     "per-image CSV and JSON summary, as evaluate scores")
    r.add_argument("--model", required=True,
                   help="checkpoint (.pt), a models/<objective> folder, or MLflow model URI")
    r.add_argument("--hr-dir", required=True, help="folder of HR images")
    r.add_argument("--lr-dir", default=None, help="folder of their LR images (same names); default: MATLAB bicubic")
    r.add_argument("--scale", type=int, default=None, help="optional check: refuse a model of another scale")
    r.add_argument("-o", "--output", required=True, help="folder for image_scores.csv and summary.json")
    r.add_argument("--tile", type=int, default=256, help="LR tile side (bounds memory)")
    r.add_argument("--overlap", type=int, default=16, help="LR pixels of overlap between tiles")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    r.add_argument("--self-ensemble", action="store_true", help="score with x8 self-ensemble")
    r.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for runs:/ and models:/ URIs")
    e = _add_command(sub, "export", cmd_export, "export a trained model, decode included, as ONNX (dynamic "
                     "height/width) and TorchScript, checked against PyTorch", params=False)
    e.add_argument("--model", required=True, help="checkpoint (.pt), a models/<objective> folder, or MLflow model URI")
    e.add_argument("-o", "--output", required=True, help="folder for model.onnx and model.torchscript.pt")
    e.add_argument("--format", dest="formats", action="append", choices=["onnx", "torchscript"],
                   help="only this format (repeatable; default: both)")
    e.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for runs:/ and models:/ URIs")
    m = _add_command(sub, "models", cmd_models, "list the networks with parameter counts and FLOPs", params=False)
    m.add_argument("--scale", type=int, default=2)


def _add_setup_commands(sub: argparse._SubParsersAction) -> None:
    """weights and config: the metric weights and the params themselves."""
    w = _add_command(sub, "weights", cmd_weights, "fetch the LPIPS backbone and FID Inception weights into the "
                     "torch hub cache, checked against the sha256 prefix in their names (JSON of paths on stdout)",
                     params=False)
    w.add_argument("action", choices=["fetch"])
    w.add_argument("names", nargs="*", metavar="NAME",
                   help="lpips-alex, lpips-vgg, lpips-squeeze or fid (default: lpips-alex fid, as the default params)")
    w.add_argument("--base-url", default=None,
                   help="folder URL serving the files instead of upstream (also $SRLOSS_WEIGHTS_URL), e.g. a mirror")
    c = _add_command(sub, "config", cmd_config, "print the resolved params (defaults filled in, overrides applied)")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--reference", action="store_true", help="print the configuration reference (markdown)")
    which.add_argument("--options", action="store_true",
                       help="print the options of every objective, loss term and network (markdown)")
    c.add_argument("--write", metavar="FILE", nargs="?", const=True,
                   help="with --reference or --options: replace the generated block in FILE "
                        "(default docs/configuration.md or docs/options.md)")


def continue_command(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """The second half of an interruption's sentence: the command that continues the work."""
    if os.environ.get("DVC_STAGE"):
        return "continue with `dvc repro` (the sweep stage resumes its unfinished sweep)"
    words = ["python", "-m", "pipeline", *_without_resume_options(argv)]
    if args.command == "train":
        return f"continue with `{shlex.join([*words, '--run-dir', args.run_dir, '--resume'])}`"
    if args.command == "sweep":
        return f"continue with `{shlex.join([*words, '--resume'])}`"
    return f"run `{shlex.join(words)}` again (the earlier outputs are kept)"


def _without_resume_options(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--resume [always|auto]``, ``--overwrite`` and ``--run-dir DIR``."""
    kept: list[str] = []
    previous = ""
    for word in argv:
        dropped = (word in ("--overwrite", "--resume", "--run-dir") or word.startswith(("--run-dir=", "--resume="))
                   or previous == "--run-dir" or (previous == "--resume" and word in ("always", "auto")))
        if not dropped:
            kept.append(word)
        previous = word
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if os.environ.get("DVC_STAGE"):  # run by `dvc repro`: end with it rather than run on as an orphan
        end_with_parent()
    if args.command == "sweep" and not in_own_session():  # Ray's processes out of reach of group signals
        return run_in_own_session(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redact_logs()  # credentials in URIs never reach the terminal or a log file
    args.signals = StopSignals(record=args.command in ("train", "sweep"), doing=f"while running {args.command}")
    args.signals.install()
    try:
        args.handler(args)
    except Interrupted as stop:
        print(f"{stop}; {continue_command(args, argv)}", file=sys.stderr)
        return stop.exit_status
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
