"""Run BFCL's own multi-turn inference loop against an OpenAI-compatible endpoint, in a child process.

This exists to prove that `envtune eval` plays episodes exactly as the official harness does: the
official handler of a pinned release (`OpenAICompletionsHandler` in 2026 releases, `OpenAIHandler`
in June 2025) drives each entry through `inference_multi_turn_prompting` or `..._FC` against the
endpoint, and each result is then decoded and checked as the official evaluation runner does (the
handler's `decode_execute`, empty and undecodable steps dropped, the turn-count rule, then
`multi_turn_checker`). Test entries are prepared by the release's own function that adds the tool
docs and moves held-out ones to `missed_function`.

The official executor `eval`s model output and keeps instances in module globals, so all of this
only ever runs in a throwaway child (see `envtune.bfcl.official`), against endpoints we control.

Child protocol: `python -m envtune.bfcl.official_loop ROOT VERSION BASE_URL MODEL PROTOCOL OUT < jobs.jsonl`
with one job `{"id": ...}` per line; OUT gets one record per job (`id`, `result` as the official
result file holds it, `decoded`, `valid`, `error_type`, `inference_error`) and a stats line.
The endpoint's API key comes from $OPENAI_API_KEY, as the official handler reads it.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from typing import Any, Iterable

from envtune.bfcl.official import checker_child_loop, child_arguments, official_entries, run_checker_child
from envtune.bfcl.release import release_root, resolve_release
from envtune.errors import EnvtuneError

PROTOCOLS = ("prompt", "native")  # the official loop's prompting and function-calling modes


def run_official_inference(
    ids: Iterable[str], base_url: str, model: str, protocol: str, release: str | None = None, timeout: float = 1800,
) -> list[dict[str, Any]]:
    """The official loop's result and verdict for each task id, in order."""
    if protocol not in PROTOCOLS:
        raise EnvtuneError(f"protocol {protocol!r}: the official loop has {', '.join(PROTOCOLS)}")
    command = [
        sys.executable, "-m", "envtune.bfcl.official_loop",
        str(release_root(release)), resolve_release(release).version, base_url, model, protocol,
    ]
    records, _ = run_checker_child(command, ({"id": task_id} for task_id in ids), timeout=timeout)
    return records


def _official_entry_preparer(root: str):
    """The release's own function that adds tool docs to multi-turn entries. 2026 releases export it
    from `bfcl_eval.utils`; June 2025 keeps it in a module that imports every vendor SDK, so its
    source is taken out with `ast` and run beside the names it uses."""
    try:
        from bfcl_eval.utils import populate_test_cases_with_predefined_functions

        return populate_test_cases_with_predefined_functions
    except ImportError:
        path = os.path.join(root, "bfcl_eval", "_llm_response_generation.py")
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        [function] = [node for node in ast.parse(source).body
                      if isinstance(node, ast.FunctionDef) and node.name == "process_multi_turn_test_case"]
        namespace: dict[str, Any] = {}
        exec(  # noqa: S102 - official code of the pinned release, in the throwaway child
            "from bfcl_eval.constants.category_mapping import MULTI_TURN_FUNC_DOC_FILE_MAPPING\n"
            "from bfcl_eval.constants.eval_config import MULTI_TURN_FUNC_DOC_PATH\n"
            "from bfcl_eval.utils import is_multi_turn, load_file\n"  # the module takes load_file from a re-export of utils
            + ast.get_source_segment(source, function),
            namespace,
        )
        return namespace["process_multi_turn_test_case"]


def _official_handler(model: str, function_calling: bool):
    """The release's OpenAI chat-completions handler, reading $OPENAI_BASE_URL and $OPENAI_API_KEY."""
    try:
        from bfcl_eval.model_handler.api_inference.openai_completion import OpenAICompletionsHandler

        return OpenAICompletionsHandler(model, 0.0, registry_name=model, is_fc_model=function_calling)
    except ImportError:
        from bfcl_eval.model_handler.api_inference.openai import OpenAIHandler

        handler = OpenAIHandler(model, 0.0)
        handler.is_fc_model = function_calling
        return handler


def _child_main(argv: list[str]) -> None:  # pragma: no cover - runs in the child process
    import contextlib
    import copy
    import inspect
    import io

    args = child_arguments("python -m envtune.bfcl.official_loop", argv, "root", "version", "base_url", "model", "protocol")
    sys.path.insert(0, args.root)
    os.environ["OPENAI_BASE_URL"] = args.base_url
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response

    handler = _official_handler(args.model, args.protocol == "native")
    takes_tag = "has_tool_call_tag" in inspect.signature(handler.decode_execute).parameters
    prepare = _official_entry_preparer(args.root)
    entries, answers = official_entries(args.root, args.version)

    def decode(step: Any) -> list[str] | None:
        """One step as the evaluation runner decodes it; None for a step it drops."""
        try:
            calls = handler.decode_execute(step, has_tool_call_tag=False) if takes_tag else handler.decode_execute(step)
        except Exception:
            return None
        return None if is_empty_execute_response(calls) else calls

    def play(job: dict[str, Any], index: int) -> dict[str, Any]:
        entry_id = job["id"]
        entry = prepare([copy.deepcopy(entries[entry_id])])[0]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the loop prints every step
                result, _ = handler.inference(entry, include_input_log=False, exclude_state_log=True)
        except Exception as error:  # the official run records such an entry as an inference error
            return {"id": entry_id, "result": None, "decoded": None, "valid": False,
                    "error_type": "multi_turn:inference_error", "inference_error": f"{type(error).__name__}: {error}"}
        decoded = [[calls for calls in map(decode, turn) if calls is not None] for turn in result]
        record = {"id": entry_id, "result": json.loads(json.dumps(result, default=str)), "decoded": decoded, "inference_error": None}
        ground_truth = answers[entry_id]
        if len(result) != len(ground_truth):  # the runner's force-termination rule
            return {**record, "valid": False, "error_type": "multi_turn:force_terminated"}
        checked = multi_turn_checker(decoded, ground_truth, entries[entry_id], entry_id.rsplit("_", 1)[0], "official_check")
        return {**record, "valid": checked["valid"], "error_type": checked.get("error_type")}

    checker_child_loop(args, play, "official loop")


if __name__ == "__main__":  # pragma: no cover
    _child_main(sys.argv[1:])
