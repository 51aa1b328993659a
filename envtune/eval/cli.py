"""`envtune eval`: measure a model on BFCL multi-turn with official-parity scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from envtune.bfcl.release import RELEASES
from envtune.bfcl.splits import ALL, SPLIT_NAMES, split_tasks
from envtune.bfcl.tasks import task_index
from envtune.env.episode import FEEDBACK_MODES
from envtune.env.prompts import PROMPT_VARIANTS


def select_tasks(split: str, ids: str | None, release: str | None):
    """A shipped split, `all`, or a comma-separated list of task ids."""
    tasks = task_index(release)
    if ids:
        wanted = [task_id.strip() for task_id in ids.split(",") if task_id.strip()]
        unknown = [task_id for task_id in wanted if task_id not in tasks]
        if unknown:
            raise ValueError(f"unknown task id {unknown[0]!r} (expected e.g. multi_turn_base_0)")
        return [tasks[task_id] for task_id in wanted]
    return split_tasks(split, release)


def cmd_eval(args: argparse.Namespace) -> int:
    from functools import partial

    from envtune.eval.runner import EvalConfig, evaluate, play_chat, play_tokens, rescore, summarize_run, summary_table

    if args.rescore:
        mismatches = rescore(args.rescore, args.release)
        for line in mismatches:
            print(f"MISMATCH {line}")
        print(summary_table(summarize_run(args.rescore)))
        print(f"rescored {args.rescore}: {'all stored verdicts reproduced' if not mismatches else f'{len(mismatches)} differ'}")
        return 1 if mismatches else 0
    if not args.model:
        raise ValueError("--model is required: a local path or Hugging Face id ('tiny' for the local test model), "
                         "or the served model's name with --base-url")
    tasks = select_tasks(args.split, args.ids, args.release)
    if args.protocol == "native" and not args.base_url:
        raise ValueError("--protocol native needs an endpoint (--base-url); local models speak envtune or prompt")
    config = EvalConfig(
        protocol=args.protocol, feedback=args.feedback, max_steps_per_turn=args.max_steps,
        prompt=args.prompt or ("bfcl" if args.protocol == "prompt" else "extended"),
        samples=args.samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        max_completion_tokens=args.max_completion_tokens, seed=args.seed, batch_size=args.batch_size,
    )
    output = Path(args.output or Path("runs") / "eval" / Path(str(args.model)).name)
    if args.base_url:
        from envtune.eval.api import ChatEndpoint, EndpointConfig

        endpoint = ChatEndpoint(EndpointConfig(
            base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
            max_retries=args.retries, timeout=args.timeout,
        ))
        policy = partial(play_chat, endpoint=endpoint, config=config)
    else:
        from envtune.models import load_model_and_tokenizer
        from envtune.rollout import HFBackend

        model, tokenizer = load_model_and_tokenizer(args.model)
        policy = partial(play_tokens, backend=HFBackend(model, tokenizer, args.batch_size), tokenizer=tokenizer, config=config)
    summary = evaluate(tasks, policy, config, output, model=str(args.model), release=args.release, resume=args.resume)
    print(summary_table(summary))
    print(f"results in {output}: results.jsonl, summary.json, bfcl_result.jsonl (official format), eval_config.json")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="evaluate a model on BFCL multi-turn (official rules and scoring)")
    parser.add_argument("--model", help="local path or Hugging Face id of a causal LM with a chat template ('tiny': local test model)")
    parser.add_argument("--split", choices=(*SPLIT_NAMES, ALL), default="heldout", help="tasks (default: heldout, the paper's 400)")
    parser.add_argument("--ids", help="comma-separated task ids instead of a split")
    parser.add_argument("--protocol", choices=("envtune", "prompt", "native"), default="envtune",
                        help="reply format (default: envtune; native = function calling, endpoints only)")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, SGLang)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel requests to the endpoint")
    parser.add_argument("--retries", type=int, default=4, help="retries of a transient failure, with backoff")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--feedback", choices=FEEDBACK_MODES, default="standard")
    parser.add_argument("--prompt", choices=PROMPT_VARIANTS, default=None,
                        help="system prompt (default: bfcl, the official text, with --protocol prompt; else extended)")
    parser.add_argument("--max-steps", type=int, default=20, help="steps per turn before the entry is force-quit (BFCL: 20)")
    parser.add_argument("--samples", type=int, default=1, help="samples per task; >1 reports mean and 95%% interval")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 decodes greedily")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--max-completion-tokens", type=int, default=32768)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="results directory (default: runs/eval/<model name>)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    parser.add_argument("--rescore", metavar="DIR", help="re-score the saved trajectories of DIR offline")
    parser.add_argument("--release", choices=sorted(RELEASES), default=None)
    parser.set_defaults(handler=cmd_eval)
