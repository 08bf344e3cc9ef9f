"""`python -m encoderec ...`: data statistics and conversion, the notebook report, encoder training and export.

Every subcommand takes --data-dir. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from encoderec.core.errors import EncoderecError
from encoderec.pipeline.registry import ID_ONLY_ARGUMENT


def _cmd_stats(args: argparse.Namespace) -> None:
    from encoderec.data import dataset as data

    print(json.dumps(data.stats(data.load_dataset(args.name, args.data_dir))))


def _cmd_convert(args: argparse.Namespace) -> None:
    from encoderec.core import paths
    from encoderec.data import convert
    from encoderec.data import dataset as data

    dataset = convert.convert_release(
        args.release, args.reviews, args.meta, args.name, paths.data_dir(args.data_dir), min_count=args.min_count
    )
    print(json.dumps(data.stats(dataset)))


def _cmd_download(args: argparse.Namespace) -> None:
    from encoderec.core import paths
    from encoderec.data import convert
    from encoderec.data import dataset as data

    dataset = convert.download(
        args.category,
        args.release,
        paths.data_dir(args.data_dir),
        name=args.name,
        base_url=args.base_url,
        min_count=args.min_count,
    )
    print(json.dumps(data.stats(dataset)))


def _cmd_report(args: argparse.Namespace) -> None:
    from encoderec.report import runner

    summary = runner.run_report(args.profile, only=args.only, data_dir=args.data_dir, force=args.force,
                                 part=args.part, read_only=args.read_only)
    print(summary)


def _cmd_fit(args: argparse.Namespace) -> None:
    from encoderec.pipeline import registry, runs
    from encoderec.pipeline.policy import Policy
    from encoderec.report import runner

    started = time.perf_counter()
    parts = [runner.part_parameters(args.profile, part, args.data_dir) for part in args.part]
    planned = [(part, run) for part, (notebook, params) in zip(args.part, parts, strict=True)
               for run in runs.plan(notebook, params, args.setting)]
    if args.backbone:
        planned = _of_backbones(planned, args.backbone)
    notebook, params = parts[0]
    # the profile's models and archive (any part's); a listing counts a model 01_encoderec has not trained as pending
    results = Path(params["output_root"]) / "results" / args.profile
    backbone_of = registry.of_profile(args.profile, results, read_only=args.list).encoder
    archive = results / "runs" if params.get("archive") else None
    if args.list:  # what a resumed campaign still has to train; reads the archive and caches, computes nothing
        for part, run in planned:
            record = runs.execute(run, backbone_of, args.device, Policy(archive, read_only=True))
            print(f"{part}: {runs.describe(record)}")
        return
    _check_models(planned, backbone_of, args.profile)
    # one pool for every part: a worker that finishes a part's last run starts the next part's first
    records = runs.fit_all([run for _, run in planned], backbone_of, args.jobs, args.device, args.threads,
                           archive=archive)
    for record in records:
        where = f"{record['wall seconds']:.0f} s in its worker" if "wall seconds" in record else "archived"
        print(f"{runs.describe(record)}; {where}")
    print(f"fit {', '.join(args.part)}: {len(records)} runs in {time.perf_counter() - started:.0f} s "
          f"({args.jobs} at a time)")


def _check_models(planned: list[tuple[str, Any]], backbone_of: Any, profile: str) -> None:
    """Fail before anything is trained when a run needs an EncodeRec model that 01_encoderec has not trained or
    whose weights this machine's cache lacks (archived runs keep their results, not their weights), naming the
    part that trains it and the backbones whose runs can train now."""
    backbones = _backbone_names(planned)
    errors = {}
    for _, run in planned:
        if run.backbone is not None and run.backbone not in errors:
            if error := _model_error(run.backbone, run.seed, backbone_of, profile):
                errors[run.backbone] = error
    if errors:
        ready = [name for name in backbones if name not in errors]
        hint = f"; or train the other runs now with {' '.join(f'--backbone {b}' for b in ready)}" if ready else ""
        raise EncoderecError(f"{next(iter(errors.values()))}{hint}")


def _model_error(name: str, seed: int, backbone_of: Any, profile: str) -> EncoderecError | None:
    try:
        path, model_seed = backbone_of(name, seed)
    except EncoderecError as error:
        return error
    if model_seed is None or Path(path).is_dir():
        return None
    from encoderec.report import runner

    parts = runner.parts_training(profile, name, model_seed)
    how = f"--part {parts[0]}" if parts else "--only 01_encoderec"
    return EncoderecError(f"{name} seed {model_seed}: its weights are not in this machine's cache ({path}); train "
                          f"them first with python -m encoderec report --profile {profile} {how}")


def _of_backbones(planned: list[tuple[str, Any]], names: list[str]) -> list[tuple[str, Any]]:
    """The planned runs of the backbones `names` (as the parts name them, `id` for the ID-only SASRec): a session
    with time for only some of a part's runs trains those; an unknown name is an error that lists the parts'
    backbones."""
    known = _backbone_names(planned)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise EncoderecError(f"--backbone {unknown[0]}: no run of these parts uses it; their backbones: "
                             f"{', '.join(known) or 'none'}")
    return [(part, run) for part, run in planned if _backbone_name(run) in names]


def _backbone_names(planned: list[tuple[str, Any]]) -> list[str]:
    return sorted({_backbone_name(run) for _, run in planned})


def _backbone_name(run: Any) -> str:
    return ID_ONLY_ARGUMENT if run.backbone is None else run.backbone


def _cmd_export(args: argparse.Namespace) -> None:
    from encoderec.data import dataset as data
    from encoderec.pipeline import export

    dataset = data.load_dataset(args.dataset, args.data_dir)
    options = {"profile": args.profile, "seed": args.seed, "device": args.device}
    if args.what == "embeddings":
        path = export.export_embeddings(dataset, args.model, args.out, **options)
    else:
        config = _rqvae_config(args.rqvae, args.seed)
        path = export.export_semantic_ids(dataset, args.model, args.out, args.tokenizer, config, **options)
    print(path)


def _rqvae_config(text: str | None, seed: int) -> Any:
    """RQVAEConfig from --rqvae's YAML fields (and --seed); anything else is a one-line error naming the flag."""
    import yaml

    from encoderec.models.rqvae import RQVAEConfig

    try:
        fields = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        fields = None
    if not isinstance(fields, dict):
        raise EncoderecError(f"--rqvae {text!r}: expected a YAML mapping such as '{{levels: 3, codebook_size: 256}}'")
    return RQVAEConfig.from_dict({"seed": seed, **fields}, source="--rqvae")


def _cmd_train(args: argparse.Namespace) -> None:
    from encoderec.models import trainer

    cfg = trainer.load_config(args.config)
    final = trainer.train(cfg, data_dir=args.data_dir, output_dir=args.output_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every process returns the same path
        print(final)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="encoderec", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="dataset folder (default: $ENCODEREC_DATA, ../shared/data, ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    data_p = sub.add_parser("data", help="dataset statistics, conversion and download")
    data_sub = data_p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("stats", parents=[common], help="print one JSON object of dataset statistics")
    p.add_argument("name")
    p.set_defaults(func=_cmd_stats)

    p = data_sub.add_parser("convert", parents=[common], help="convert official Amazon files into the data layout")
    p.add_argument("--release", required=True, choices=["2014", "2018", "2023"])
    p.add_argument("--reviews", required=True, help="reviews_<Cat>_5.json[.gz], ratings CSV, or <Cat>.jsonl[.gz]")
    p.add_argument("--meta", required=True, help="meta_<Cat>.json[.gz] or meta_<Cat>.jsonl[.gz]")
    p.add_argument("--name", required=True, help="dataset name (folder under the data directory)")
    p.add_argument("--min-count", type=int, default=5, help="k of the k-core filter (default 5)")
    p.set_defaults(func=_cmd_convert)

    p = data_sub.add_parser("download", parents=[common], help="fetch the official files of a category and convert them")
    p.add_argument("category", help="e.g. Beauty, Industrial_and_Scientific, All_Beauty")
    p.add_argument("--release", required=True, choices=["2014", "2018", "2023"])
    p.add_argument("--name", help="dataset name (default: the category)")
    p.add_argument("--base-url", help="where the release's files are served (default: the McAuley Lab pages)")
    p.add_argument("--min-count", type=int, default=5)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("report", parents=[common], help="execute the notebooks of a profile with papermill")
    p.add_argument("--profile", default="default", help="a YAML file name in params/ (smoke, default, paper)")
    p.add_argument("--only", action="append", help="run only this notebook (e.g. 00_data); repeatable")
    p.add_argument("--part", help="run one part of the profile (its `parts:`): a notebook on a slice of its work")
    p.add_argument("--force", action="store_true", help="re-run notebooks even when their inputs are unchanged")
    p.add_argument("--read-only", action="store_true",
                   help="compute nothing: every model, run, tokenization and ranking from the profile's archive (or "
                        "this machine's caches), the rest listed as pending; a campaign's tables in minutes")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("fit", parents=[common], help="train the recommender runs of profile parts, several at once "
                       "(the GPU set), into the run caches that the notebooks read")
    p.add_argument("--profile", default="paper", help="a YAML file name in params/")
    p.add_argument("--part", action="append", required=True, help="a part of 04_unisrec or 05_tiger; repeatable")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at the same time, in worker processes")
    p.add_argument("--device", help="cuda, cuda:1, cpu, ... (default: CUDA when available)")
    p.add_argument("--threads", type=int, help="CPU threads per worker (default: torch's)")
    p.add_argument("--setting", action="append", help="only the runs of this setting of 04_unisrec's ablation "
                   "(a label under the profile's `ablation: settings`); repeatable")
    p.add_argument("--backbone", action="append", help=f"only the runs of this backbone (tfidf-svd, EncodeRec-110M, "
                   f"...; {ID_ONLY_ARGUMENT} for the ID-only SASRec); repeatable")
    p.add_argument("--list", action="store_true", help="list the parts' runs, each finished (read from the run "
                   "cache) or pending, and train nothing")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("export", parents=[common], help="write a catalogue's item embeddings or semantic-ID table "
                       "as Parquet, with provenance (see encoderec.pipeline.export)")
    p.add_argument("what", choices=["embeddings", "semantic-ids"])
    p.add_argument("dataset", help="a catalogue in the data layout (a folder name under --data-dir)")
    p.add_argument("--model", required=True, help="an encoder alias, folder or Hugging Face id, a baseline "
                   "(tfidf-svd, random), or a model of 01_encoderec (EncodeRec-22M) trained for --profile")
    p.add_argument("--out", required=True, help="the Parquet file to write")
    p.add_argument("--profile", default="default", help="whose 01_encoderec models --model may name")
    p.add_argument("--seed", type=int, default=0, help="the 01_encoderec model's seed and the tokenizer's")
    p.add_argument("--tokenizer", default="rqvae", choices=["rqvae", "rkmeans"])
    p.add_argument("--rqvae", help="RQVAEConfig fields as YAML, e.g. '{levels: 3, codebook_size: 256, epochs: 100}'")
    p.add_argument("--device", help="cuda, cpu, ... (default: CUDA when available)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("train", parents=[common], help="fine-tune an encoder (works under torchrun); prints its path")
    p.add_argument("config", help="YAML file of TrainConfig fields (see encoderec.models.trainer)")
    p.add_argument("--output-dir", help="run folder (default: <cache>/encoderec/<name>-<config fingerprint>)")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except EncoderecError as e:
        print(f"encoderec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("encoderec: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
