"""`envtune eval`: measure a model on BFCL multi-turn with official-parity scores."""

from __future__ import annotations

import argparse
import hashlib
import sys
from functools import partial
from pathlib import Path

from envtune.bfcl.splits import ALL, SPLIT_NAMES, split_tasks
from envtune.bfcl.tasks import task_index
from envtune.cli_options import add_episode_arguments, add_verbose_argument, episode_overrides
from envtune.cli_values import non_negative_float, non_negative_int, positive_float, positive_int
from envtune.console import quiet_libraries
from envtune.env.protocols import PROTOCOLS
from envtune.models import add_placement_arguments
from envtune.errors import EnvtuneError

REQUEST_ERROR_EXIT = 1  # the run finished, but some tasks still need `--resume`


def select_tasks(split: str, ids: str | None, release: str | None):
    """A shipped split, `all`, or a comma-separated list of task ids."""
    if ids is None:
        return split_tasks(split, release)
    wanted = [task_id.strip() for task_id in ids.split(",") if task_id.strip()]
    if not wanted:
        raise EnvtuneError(f"--ids {ids!r} names no task; give comma-separated ids such as multi_turn_base_0,multi_turn_miss_func_3")
    tasks = task_index(release)
    unknown = [task_id for task_id in wanted if task_id not in tasks]
    if unknown:
        raise EnvtuneError(f"--ids: unknown task id {unknown[0]!r} (expected e.g. multi_turn_base_0)")
    return [tasks[task_id] for task_id in dict.fromkeys(wanted)]


def default_output(model: str, base_url: str | None) -> Path:
    """runs/eval/<model name>-<hash>: readable, and distinct for two checkpoints with one base name
    (`.../a/best-step-40` and `.../b/best-step-40`) or one model name on two endpoints."""
    source = str(Path(model).resolve()) if base_url is None and Path(model).exists() else model
    digest = hashlib.sha256(f"{base_url or 'local'}|{source}".encode()).hexdigest()[:8]
    return Path("runs") / "eval" / f"{Path(model).name or 'model'}-{digest}"


def cmd_rescore(args: argparse.Namespace) -> int:
    from envtune.eval.runner import rescore, summarize, summary_table, write_rescored

    records, mismatches = rescore(args.rescore, args.release)
    for line in mismatches:
        print(f"MISMATCH {line}")
    print(summary_table(write_rescored(args.rescore, records) if args.write else summarize(records)))
    outcome = "all stored verdicts reproduced" if not mismatches else f"{len(mismatches)} differ"
    print(f"rescored {args.rescore}: {outcome}" + ("; verdicts, summary and export rewritten" if args.write else ""))
    return 1 if mismatches else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from envtune.eval.players import play_endpoint, play_local
    from envtune.eval.runner import EvalConfig, evaluate, summary_table

    if args.rescore:
        return cmd_rescore(args)
    if args.write:
        raise EnvtuneError("--write applies to --rescore only")
    if not args.model:
        raise EnvtuneError("--model is required: a local path or Hugging Face id ('tiny' for the local test model, 'tiny-128x4' for a larger one), "
                           "or the served model's name with --base-url")
    if args.protocol == "native" and not args.base_url:
        raise EnvtuneError("--protocol native needs an endpoint (--base-url); local models speak envtune or prompt")
    tasks = select_tasks(args.split, args.ids, args.release)
    output = Path(args.output) if args.output else default_output(args.model, args.base_url)
    if output.exists() and not output.is_dir():
        raise EnvtuneError(f"--output {output} is a file; give a directory for the results")
    episode_settings = episode_overrides(args)
    episode_settings.setdefault("prompt", "bfcl" if args.protocol == "prompt" else "extended")
    config = EvalConfig(
        **episode_settings, samples=args.samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        max_completion_tokens=args.max_completion_tokens, seed=args.seed, batch_size=args.batch_size,
    )
    if args.base_url:
        from envtune.eval.api import ChatEndpoint, EndpointConfig

        placed = [flag for flag, value in (("--device", args.device), ("--dtype", args.dtype)) if value != "auto"]
        if placed:
            raise EnvtuneError(f"{placed[0]} applies to local models; the endpoint at --base-url places its own model")
        endpoint = ChatEndpoint(EndpointConfig(
            base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
            max_retries=args.retries, timeout=args.timeout,
        ))
        endpoint.preflight()
        print(f"envtune eval: {len(tasks)} tasks x {args.samples} samples, model {args.model!r} at {args.base_url} "
              f"({args.concurrency} requests in flight), results in {output}", file=sys.stderr)
        player = partial(play_endpoint, endpoint=endpoint, config=config)
    else:
        from envtune.models import load_model_and_tokenizer, resolve_placement
        from envtune.rollout.cached import hf_backend

        if not args.verbose:
            quiet_libraries()
        placement = resolve_placement(args.device, args.dtype)
        print(f"envtune eval: {len(tasks)} tasks x {args.samples} samples, model {args.model} on {placement.describe()}, "
              f"results in {output}", file=sys.stderr)
        model, tokenizer = load_model_and_tokenizer(args.model, placement=placement)
        player = partial(play_local, backend=hf_backend(model, tokenizer, args.batch_size), tokenizer=tokenizer, config=config)
    summary = evaluate(tasks, player, config, output, model=str(args.model), release=args.release, resume=args.resume)
    print(summary_table(summary))
    print(f"results in {output}: results.jsonl, summary.json, bfcl_result.jsonl (official format), eval_config.json")
    if summary["request_errors"]:
        print(f"envtune eval: {summary['request_errors']} tasks ended on a request error (counted as failures above); "
              f"run the same command with --resume to retry them", file=sys.stderr)
        return REQUEST_ERROR_EXIT
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="evaluate a model on BFCL multi-turn (official rules and scoring)")
    parser.add_argument("--model", help="local path or Hugging Face id of a causal LM with a chat template ('tiny' or 'tiny-HIDDENxLAYERS': a local test model)")
    parser.add_argument("--split", choices=(*SPLIT_NAMES, ALL), default="heldout", help="tasks (default: heldout, the paper's 400)")
    parser.add_argument("--ids", help="comma-separated task ids instead of a split")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, SGLang)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--concurrency", type=positive_int, default=8, help="requests in flight at once (endpoints; default 8)")
    parser.add_argument("--retries", type=non_negative_int, default=4, help="retries of a transient failure, with backoff (default 4)")
    parser.add_argument("--timeout", type=positive_float, default=120.0, help="seconds per request (default 120)")
    add_episode_arguments(
        parser, protocols=PROTOCOLS,
        defaults={"feedback": "standard", "protocol": "envtune", "prompt": None, "max_steps_per_turn": 20},
        default_notes={"prompt": "bfcl with --protocol prompt, as the leaderboard prompts; else extended"},
    )
    parser.add_argument("--samples", type=positive_int, default=1, help="samples per task; >1 reports mean and 95%% interval")
    parser.add_argument("--temperature", type=non_negative_float, default=0.0, help="0 decodes greedily")
    parser.add_argument("--max-new-tokens", type=positive_int, default=1024)
    parser.add_argument("--max-completion-tokens", type=positive_int, default=32768)
    parser.add_argument("--batch-size", type=positive_int, default=16, help="episodes generated together (local models)")
    parser.add_argument("--seed", type=int, default=0)
    add_placement_arguments(parser)
    add_verbose_argument(parser, quiet="one progress bar, with the running accuracy, on a terminal")
    parser.add_argument("--output", help="results directory (default: runs/eval/<model name>-<hash of model and endpoint>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --output: play unfinished tasks and retry those that ended on a request error")
    parser.add_argument("--rescore", metavar="DIR", help="re-score the saved trajectories of DIR offline and print the table")
    parser.add_argument("--write", action="store_true", help="with --rescore: write the rescored verdicts and summary into DIR")
    parser.set_defaults(handler=cmd_eval)
