"""Golden examples for the GorillaFileSystem hints: a real failing call on a real backend, its exact
official result, and the exact text the model gets back instead (the result plus one hint line).

Every case starts from a fresh session on the small scenario below; all calls but the last are setup.
Both pinned releases are covered: the paper's release words several errors differently (and its echo
creates missing files). A process can import one release only, so the other one runs in a child
process (this file, run as a script).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from envtune.bfcl.backends import class_tool_docs
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.release import DEFAULT_RELEASE, PAPER_RELEASE, resolve_release
from envtune.feedback import DEFAULT_RULES, HintRuleWarning, augment, error_message

NEW, OLD = DEFAULT_RELEASE, PAPER_RELEASE
BOTH = (NEW, OLD)


def _directory(**contents) -> dict:
    return {"type": "directory", "contents": contents}


def _file(content: str) -> dict:
    return {"type": "file", "content": content}


# workspace/ (the top-level directory, where every session starts)
#   document/  report.txt, archive/ (empty)
#   notes.txt
#   empty/
SCENARIO = {"GorillaFileSystem": {"root": {"workspace": _directory(
    document=_directory(**{"report.txt": _file("Q2 sales\nQ1 sales\n"), "archive": _directory()}),
    **{"notes.txt": _file("call Alice")},
    empty=_directory(),
)}}}
SCENARIO_NAMES = ("workspace", "document", "report.txt", "archive", "notes.txt", "empty")


@dataclass(frozen=True)
class Golden:
    name: str
    releases: str | tuple[str, ...]
    calls: tuple[str, ...]  # setup calls, then the failing call
    standard: str  # the official result of the failing call
    kind: str
    hint: str

    @property
    def release_list(self) -> tuple[str, ...]:
        return (self.releases,) if isinstance(self.releases, str) else self.releases


GOLDEN = [
    Golden('cd_nested_path', NEW, ("cd(folder='document/archive')",),
           '{"error": "cd: document/archive: Unsupported path. Only one folder level at a time is supported."}',
           'file_system.path_not_allowed',
           "cd moves one directory level at a time, so it does not accept a path like 'document/archive'. Call cd once per level with just the directory's name ('..' goes up one level)."),
    Golden('cd_missing_path', OLD, ("cd(folder='document/missing')",),
           '{"error": "cd: document/missing: No such directory. You cannot use path to change directory."}',
           'file_system.path_not_allowed',
           "cd moves one directory level at a time, so it does not accept a path like 'document/missing'. Call cd once per level with just the directory's name ('..' goes up one level)."),
    Golden('cd_trailing_slash_parent', OLD, ("cd(folder='../')",),
           '{"error": "cd: ../: No such directory. You cannot use path to change directory."}',
           'file_system.path_not_allowed',
           "cd moves one directory level at a time, so it does not accept a path like '../'. Call cd once per level with just the directory's name ('..' goes up one level)."),
    Golden('cd_above_root', NEW, ("cd(folder='..')",),
           '{"error": "Current directory is already the root. Cannot go back."}',
           'file_system.cd_above_root',
           'You are already in the top-level (root) directory, so there is no parent to go back to. Use ls to see the directories here and cd into one of them by name.'),
    Golden('cd_above_root', OLD, ("cd(folder='..')",),
           '{"error": "Cuurent directory is already the root. Cannot go back."}',
           'file_system.cd_above_root',
           'You are already in the top-level (root) directory, so there is no parent to go back to. Use ls to see the directories here and cd into one of them by name.'),
    Golden('cd_parent_with_slash_at_root', NEW, ("cd(folder='../')",),
           '{"error": "Current directory is already the root. Cannot go back."}',
           'file_system.cd_above_root',
           'You are already in the top-level (root) directory, so there is no parent to go back to. Use ls to see the directories here and cd into one of them by name.'),
    Golden('cd_into_file', NEW, ("cd(folder='notes.txt')",),
           '{"error": "cd: \'notes.txt\': No such file or directory"}',
           'file_system.not_a_directory',
           "'notes.txt' is a file, not a directory, so cd cannot enter it. cd only goes into directories ('..' for the parent); read a file with cat instead."),
    Golden('cd_into_file', OLD, ("cd(folder='notes.txt')",),
           '{"error": "cd: notes.txt: No such directory. You cannot use path to change directory."}',
           'file_system.not_a_directory',
           "'notes.txt' is a file, not a directory, so cd cannot enter it. cd only goes into directories ('..' for the parent); read a file with cat instead."),
    Golden('cd_missing', NEW, ("cd(folder='reports')",),
           '{"error": "cd: \'reports\': No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is no directory 'reports' right inside the current directory, and cd only enters a directory directly below where you are ('..' goes up). Use ls to see what is here, or find to search the directories below."),
    Golden('cd_missing', OLD, ("cd(folder='reports')",),
           '{"error": "cd: reports: No such directory. You cannot use path to change directory."}',
           'file_system.not_in_current_directory',
           "There is no directory 'reports' right inside the current directory, and cd only enters a directory directly below where you are ('..' goes up). Use ls to see what is here, or find to search the directories below."),
    Golden('mkdir_path', BOTH, ("mkdir(dir_name='document/drafts')",),
           '{"error": "mkdir: cannot create directory \'document/drafts\': Invalid character"}',
           'file_system.path_not_allowed',
           "mkdir only takes the name of an item in the current directory, without '/', so a path like 'document/drafts' is not allowed. Go to the right directory first with cd (one level at a time), then call mkdir with just the name."),
    Golden('mkdir_invalid_character', BOTH, ("mkdir(dir_name='Q1:Q2')",),
           '{"error": "mkdir: cannot create directory \'Q1:Q2\': Invalid character"}',
           'file_system.invalid_character',
           'Names cannot contain any of | / \\ ? % * : " > <, and \'Q1:Q2\' contains \':\'. Use a name without these characters (check the exact name with ls if the item already exists).'),
    Golden('mkdir_existing_directory', BOTH, ("mkdir(dir_name='document')",),
           '{"error": "mkdir: cannot create directory \'document\': File exists"}',
           'file_system.name_taken',
           "There is already a directory named 'document' in the current directory. If it is the directory you need, cd into it; otherwise pick a different name."),
    Golden('mkdir_existing_file', BOTH, ("mkdir(dir_name='notes.txt')",),
           '{"error": "mkdir: cannot create directory \'notes.txt\': File exists"}',
           'file_system.name_taken',
           "There is already a file named 'notes.txt' in the current directory. Pick a different name."),
    Golden('touch_existing_file', BOTH, ("touch(file_name='notes.txt')",),
           '{"error": "touch: cannot touch \'notes.txt\': File exists"}',
           'file_system.name_taken',
           "There is already a file named 'notes.txt' in the current directory. touch does not change it: to replace its content, use echo with this file_name; otherwise pick a different name."),
    Golden('touch_invalid_character', BOTH, ("touch(file_name='what?.txt')",),
           '{"error": "touch: cannot touch \'what?.txt\': Invalid character"}',
           'file_system.invalid_character',
           'Names cannot contain any of | / \\ ? % * : " > <, and \'what?.txt\' contains \'?\'. Use a name without these characters (check the exact name with ls if the item already exists).'),
    Golden('echo_path', NEW, ("echo(content='hi', file_name='document/report.txt')",),
           '{"error": "echo: cannot write to \'document/report.txt\': Invalid character"}',
           'file_system.path_not_allowed',
           "echo only takes the name of an item in the current directory, without '/', so a path like 'document/report.txt' is not allowed. Go to the right directory first with cd (one level at a time), then call echo with just the name."),
    Golden('echo_path', OLD, ("echo(content='hi', file_name='document/report.txt')",),
           '{"error": "echo: cannot touch \'document/report.txt\': Invalid character"}',
           'file_system.path_not_allowed',
           "echo only takes the name of an item in the current directory, without '/', so a path like 'document/report.txt' is not allowed. Go to the right directory first with cd (one level at a time), then call echo with just the name."),
    Golden('echo_invalid_character', NEW, ("echo(content='hi', file_name='a*b')",),
           '{"error": "echo: cannot write to \'a*b\': Invalid character"}',
           'file_system.invalid_character',
           'Names cannot contain any of | / \\ ? % * : " > <, and \'a*b\' contains \'*\'. Use a name without these characters (check the exact name with ls if the item already exists).'),
    Golden('echo_invalid_character', OLD, ("echo(content='hi', file_name='a*b')",),
           '{"error": "echo: cannot touch \'a*b\': Invalid character"}',
           'file_system.invalid_character',
           'Names cannot contain any of | / \\ ? % * : " > <, and \'a*b\' contains \'*\'. Use a name without these characters (check the exact name with ls if the item already exists).'),
    Golden('echo_missing_file', NEW, ("echo(content='hi', file_name='todo.txt')",),
           '{"error": "echo: cannot write to \'todo.txt\': No such file"}',
           'file_system.echo_file_missing',
           "echo only writes into a file that already exists in the current directory, and there is no 'todo.txt' here. If the file is in another directory, locate it with find and cd there; if it should be a new file, create it with touch first."),
    Golden('echo_file_named_None', NEW, ("echo(content='hi', file_name='None')",),
           '{"error": "echo: cannot write to \'None\': No such file"}',
           'file_system.echo_file_missing',
           "echo only writes into a file that already exists in the current directory, and there is no 'None' here. If the file is in another directory, locate it with find and cd there; if it should be a new file, create it with touch first. To only display the content, leave file_name out."),
    Golden('echo_into_directory', BOTH, ("echo(content='hi', file_name='document')",),
           "Error during execution: 'Directory' object has no attribute '_write'",
           'file_system.is_a_directory',
           "'document' is a directory, not a file, and echo can only write into a file. Give the name of a file instead (cd into the directory first if the file is inside it)."),
    Golden('cat_directory', NEW, ("cat(file_name='document')",),
           '{"error": "cat: \'document\': Is a directory"}',
           'file_system.is_a_directory',
           "'document' is a directory, not a file, and cat only works on files. To use a file inside it, cd into it and use ls to see its files."),
    Golden('cat_directory', OLD, ("cat(file_name='document')",),
           '{"error": "cat: document: Is a directory"}',
           'file_system.is_a_directory',
           "'document' is a directory, not a file, and cat only works on files. To use a file inside it, cd into it and use ls to see its files."),
    Golden('cat_file_elsewhere', NEW, ("cat(file_name='report.txt')",),
           '{"error": "cat: \'report.txt\': No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'report.txt' in the current directory, which is the only place cat looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('cat_file_elsewhere', OLD, ("cat(file_name='report.txt')",),
           '{"error": "cat: report.txt: No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'report.txt' in the current directory, which is the only place cat looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('cat_invalid_character', BOTH, ("cat(file_name='x>y')",),
           '{"error": "cat: \'x>y\': Invalid character"}',
           'file_system.invalid_character',
           'Names cannot contain any of | / \\ ? % * : " > <, and \'x>y\' contains \'>\'. Use a name without these characters (check the exact name with ls if the item already exists).'),
    Golden('wc_invalid_mode', BOTH, ("wc(file_name='notes.txt', mode='lines')",),
           '{"error": "wc: invalid mode \'lines\'"}',
           'file_system.wc_invalid_mode',
           "wc mode must be 'l' (lines), 'w' (words) or 'c' (characters); 'lines' is not one of them."),
    Golden('wc_directory', BOTH, ("wc(file_name='document')",),
           '{"error": "wc: document: No such file or directory"}',
           'file_system.is_a_directory',
           "'document' is a directory, not a file, and wc only works on files. To use a file inside it, cd into it and use ls to see its files."),
    Golden('grep_path', BOTH, ("grep(file_name='document/report.txt', pattern='sales')",),
           '{"error": "grep: document/report.txt: No such file or directory"}',
           'file_system.path_not_allowed',
           "grep only takes the name of an item in the current directory, without '/', so a path like 'document/report.txt' is not allowed. Go to the right directory first with cd (one level at a time), then call grep with just the name."),
    Golden('tail_file_left_behind', BOTH, ("cd(folder='document')", "tail(file_name='notes.txt')"),
           '{"error": "tail: notes.txt: No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'notes.txt' in the current directory, which is the only place tail looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('diff_directory', BOTH, ("diff(file_name1='notes.txt', file_name2='document')",),
           '{"error": "diff: notes.txt or document: No such file or directory"}',
           'file_system.is_a_directory',
           "'document' is a directory, not a file, and diff only works on files. To use a file inside it, cd into it and use ls to see its files."),
    Golden('diff_file_elsewhere', BOTH, ("diff(file_name1='notes.txt', file_name2='report.txt')",),
           '{"error": "diff: notes.txt or report.txt: No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'report.txt' in the current directory, which is the only place diff looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('mv_source_path', BOTH, ("mv(source='document/report.txt', destination='report.txt')",),
           '{"error": "mv: cannot move \'document/report.txt\': No such file or directory"}',
           'file_system.path_not_allowed',
           "mv only takes the name of an item in the current directory, without '/', so a path like 'document/report.txt' is not allowed. Go to the right directory first with cd (one level at a time), then call mv with just the name."),
    Golden('mv_destination_path', NEW, ("mv(source='notes.txt', destination='document/archive')",),
           '{"error": "mv: path not allowed in destination. Provide only a file or directory name."}',
           'file_system.path_not_allowed',
           "The destination must be a plain name in the current directory, not a path like 'document/archive': either a directory here (to move the item into it) or a new name. To reach a deeper directory, move the item into a directory here, cd into it, and go on from there with mv."),
    Golden('mv_destination_path', OLD, ("mv(source='notes.txt', destination='document/archive')",),
           '{"error": "mv: no path allowed in destination. Only file name and folder name is supported for this operation."}',
           'file_system.path_not_allowed',
           "The destination must be a plain name in the current directory, not a path like 'document/archive': either a directory here (to move the item into it) or a new name. To reach a deeper directory, move the item into a directory here, cd into it, and go on from there with mv."),
    Golden('mv_missing_source', BOTH, ("mv(source='report.txt', destination='archive')",),
           '{"error": "mv: cannot move \'report.txt\': No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'report.txt' in the current directory, which is the only place mv looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('mv_name_taken_in_destination', BOTH, ("cd(folder='document')", "touch(file_name='notes.txt')", "cd(folder='..')", "mv(source='notes.txt', destination='document')"),
           '{"error": "mv: cannot move \'notes.txt\' to \'document/notes.txt\': File exists"}',
           'file_system.destination_taken',
           "The directory 'document' already holds an item named 'notes.txt', and mv never replaces it. Pick another destination or a new name, or ask the user what to do with the existing item."),
    Golden('mv_onto_file', BOTH, ("mv(source='empty', destination='notes.txt')",),
           '{"error": "mv: cannot move \'empty\' to \'notes.txt\': Not a directory"}',
           'file_system.destination_is_a_file',
           "'notes.txt' is an existing file in the current directory, and mv never overwrites a file. To move the item into a directory, give the name of a directory here; to move it under a new name, choose a name that is not taken yet (ls shows what is here)."),
    Golden('cp_destination_path', NEW, ("cp(source='notes.txt', destination='document/archive')",),
           '{"error": "cp: path not allowed in destination. Provide only a file or directory name."}',
           'file_system.path_not_allowed',
           "The destination must be a plain name in the current directory, not a path like 'document/archive': either a directory here (to copy the item into it) or a new name. To reach a deeper directory, copy the item into a directory here, cd into it, and go on from there with mv."),
    Golden('cp_destination_path', OLD, ("cp(source='notes.txt', destination='document/archive')",),
           '{"error": "cp: don\'t allow path in destination. Only file name and folder name is supported for this operation."}',
           'file_system.path_not_allowed',
           "The destination must be a plain name in the current directory, not a path like 'document/archive': either a directory here (to copy the item into it) or a new name. To reach a deeper directory, copy the item into a directory here, cd into it, and go on from there with mv."),
    Golden('cp_missing_source', BOTH, ("cp(source='report.txt', destination='backup.txt')",),
           '{"error": "cp: cannot copy \'report.txt\': No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'report.txt' in the current directory, which is the only place cp looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('cp_file_taken_in_destination', BOTH, ("cp(source='notes.txt', destination='empty')", "cp(source='notes.txt', destination='empty')"),
           "Error during execution: File 'notes.txt' already exists in directory 'empty'.",
           'file_system.destination_taken',
           "The directory 'empty' already holds an item named 'notes.txt', and cp never replaces it. Pick another destination or a new name, or ask the user what to do with the existing item."),
    Golden('cp_directory_taken_in_destination', BOTH, ("mkdir(dir_name='drafts')", "cp(source='drafts', destination='empty')", "cp(source='drafts', destination='empty')"),
           "Error during execution: Directory 'drafts' already exists in directory 'empty'.",
           'file_system.destination_taken',
           "The directory 'empty' already holds an item named 'drafts', and cp never replaces it. Pick another destination or a new name, or ask the user what to do with the existing item."),
    Golden('cp_onto_file', BOTH, ("cp(source='document', destination='notes.txt')",),
           '{"error": "cp: cannot copy \'document\' to \'notes.txt\': Not a directory"}',
           'file_system.destination_is_a_file',
           "'notes.txt' is an existing file in the current directory, and cp never overwrites a file. To copy the item into a directory, give the name of a directory here; to copy it under a new name, choose a name that is not taken yet (ls shows what is here)."),
    Golden('rm_path', BOTH, ("rm(file_name='document/report.txt')",),
           '{"error": "rm: cannot remove \'document/report.txt\': No such file or directory"}',
           'file_system.path_not_allowed',
           "rm only takes the name of an item in the current directory, without '/', so a path like 'document/report.txt' is not allowed. Go to the right directory first with cd (one level at a time), then call rm with just the name."),
    Golden('rm_missing', BOTH, ("rm(file_name='report.txt')",),
           '{"error": "rm: cannot remove \'report.txt\': No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'report.txt' in the current directory, which is the only place rm looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('rmdir_not_empty', NEW, ("rmdir(dir_name='document')",),
           '{"error": "rmdir: cannot remove \'document\': Directory not empty"}',
           'file_system.directory_not_empty',
           "rmdir only removes empty directories, and 'document' still has something in it. Empty it first (cd into it, ls, and rm each item), or, if it should go together with everything inside, remove it with rm instead."),
    Golden('rmdir_not_empty', OLD, ("rmdir(dir_name='document')",),
           '{"error": "rmdir: failed to remove \'document\': Directory not empty"}',
           'file_system.directory_not_empty',
           "rmdir only removes empty directories, and 'document' still has something in it. Empty it first (cd into it, ls, and rm each item), or, if it should go together with everything inside, remove it with rm instead."),
    Golden('rmdir_file', BOTH, ("rmdir(dir_name='notes.txt')",),
           '{"error": "rmdir: cannot remove \'notes.txt\': Not a directory"}',
           'file_system.not_a_directory',
           "'notes.txt' is a file, not a directory, and rmdir only removes empty directories. Use rm to delete a file."),
    Golden('rmdir_missing', BOTH, ("rmdir(dir_name='archive')",),
           '{"error": "rmdir: cannot remove \'archive\': No such file or directory"}',
           'file_system.not_in_current_directory',
           "There is nothing named 'archive' in the current directory, which is the only place rmdir looks. Use ls to see what is here, or find to search the directories below (pwd shows where you are); then cd to the directory that holds it, one level at a time."),
    Golden('find_missing_path', NEW, ("find(path='reports')",),
           '{"error": "find: \'reports\': No such file or directory"}',
           'file_system.find_path_not_found',
           "find cannot start from 'reports': it is not a directory reachable from here. Relative paths start at the current directory (pwd shows where you are); leave path out to search from the current directory."),
    Golden('find_absolute_path_with_top_name', NEW, ("find(path='/workspace/document')",),
           '{"error": "find: \'/workspace/document\': No such file or directory"}',
           'file_system.find_path_not_found',
           "find cannot start from '/workspace/document': it is not a directory reachable from here. Relative paths start at the current directory (pwd shows where you are); leave path out to search from the current directory. A path starting with '/' is read from inside the top-level directory, so it does not repeat that directory's own name."),
]

# Every tool that takes a name in the current directory, given a path, and the path its hint must quote.
PATH_CALLS = [
    ("cd(folder='document/archive')", "document/archive"),
    ("mkdir(dir_name='document/drafts')", "document/drafts"),
    ("touch(file_name='document/todo.txt')", "document/todo.txt"),
    ("echo(content='hi', file_name='document/report.txt')", "document/report.txt"),
    ("cat(file_name='document/report.txt')", "document/report.txt"),
    ("wc(file_name='document/report.txt', mode='w')", "document/report.txt"),
    ("grep(file_name='document/report.txt', pattern='Q1')", "document/report.txt"),
    ("sort(file_name='document/report.txt')", "document/report.txt"),
    ("tail(file_name='document/report.txt', lines=1)", "document/report.txt"),
    ("diff(file_name1='document/report.txt', file_name2='notes.txt')", "document/report.txt"),
    ("diff(file_name1='notes.txt', file_name2='/workspace/notes.txt')", "/workspace/notes.txt"),
    ("mv(source='document/report.txt', destination='report.txt')", "document/report.txt"),
    ("mv(source='notes.txt', destination='document/archive')", "document/archive"),
    ("rm(file_name='document/report.txt')", "document/report.txt"),
    ("rmdir(dir_name='document/archive')", "document/archive"),
    ("cp(source='document/report.txt', destination='copy.txt')", "document/report.txt"),
    ("cp(source='notes.txt', destination='../notes.txt')", "../notes.txt"),
]


def run_case(release: str, calls: tuple[str, ...]) -> dict:
    """The failing call's official result and augmented text, and whether augmenting left the
    backend exactly as it was (same tree, same current directory object)."""
    docs = {doc["name"]: doc for doc in class_tool_docs("GorillaFileSystem", release)}
    with ToolSession(["GorillaFileSystem"], SCENARIO, release=release) as env:
        setup = [env.execute(call) for call in calls[:-1]]
        result = env.execute(calls[-1])
        instance = env.instances["GorillaFileSystem"]
        before, current = copy.deepcopy(vars(instance)), instance._current_dir
        augmented, hint, _ = augment(env, calls[-1], result, docs, rules=DEFAULT_RULES)
        unchanged = vars(instance) == before and instance._current_dir is current
        return {"setup": setup, "standard": result, "augmented": augmented,
                "kind": hint.kind if hint else None, "unchanged": unchanged}


@pytest.fixture(scope="module")
def outcomes():
    """`outcomes(release, calls)`: the release this process imported runs here, the other one in a
    child process, once for all of its cases."""
    here = resolve_release().version
    cache: dict[str, dict[tuple[str, ...], dict]] = {}

    def get(release: str, calls: tuple[str, ...]) -> dict:
        if release == here:
            return run_case(release, calls)
        if release not in cache:
            wanted = sorted({case.calls for case in GOLDEN if release in case.release_list}
                            | {(call,) for call, _ in PATH_CALLS})
            child = subprocess.run(
                [sys.executable, __file__, release], input=json.dumps(wanted), capture_output=True, text=True, check=False,
                timeout=300, cwd=Path(__file__).resolve().parents[2],
            )
            assert child.returncode == 0, child.stderr[-4000:]
            cache[release] = {tuple(calls): outcome for calls, outcome in zip(wanted, json.loads(child.stdout))}
        return cache[release][calls]

    return get


@pytest.mark.parametrize(
    "case, release",
    [pytest.param(case, release, id=f"{case.name}-{release}") for case in GOLDEN for release in case.release_list],
)
def test_golden_hint(case: Golden, release: str, outcomes):
    outcome = outcomes(release, case.calls)
    assert [error_message(result) for result in outcome["setup"]] == [None] * len(outcome["setup"])
    assert outcome["standard"] == case.standard
    assert outcome["augmented"] == f"{case.standard}\nHint: {case.hint}"
    assert outcome["kind"] == case.kind
    assert outcome["unchanged"], "augment changed the file system"


@pytest.mark.parametrize(
    "call, path, release",
    [
        pytest.param(call, path, release, id=f"{call.split('(')[0]}:{path}-{release}")
        for call, path in PATH_CALLS for release in BOTH
        if not (release == OLD and call.startswith("cd("))  # that release's cd follows paths that exist
    ],
)
def test_every_path_argument_is_explained(call: str, path: str, release: str, outcomes):
    outcome = outcomes(release, (call,))
    assert outcome["kind"] == "file_system.path_not_allowed", outcome["augmented"]
    assert f"'{path}'" in outcome["augmented"].split("\nHint: ", 1)[1]
    assert outcome["unchanged"]


def test_hints_name_only_items_the_call_named():
    """No hint reveals what the scenario holds: every item name it quotes came from the calls."""
    for case in GOLDEN:
        named = " ".join(case.calls)
        leaked = [name for name in SCENARIO_NAMES if f"'{name}'" in case.hint and name not in named]
        assert not leaked, f"{case.name} reveals {leaked}"


def test_every_file_system_rule_has_a_golden_example():
    kinds = {rule.kind for rule in DEFAULT_RULES if rule.kind.startswith("file_system.")}
    assert kinds == {case.kind for case in GOLDEN}


def test_spec_example_on_a_real_task(tasks):
    """The reference example: a path given to cd in a real benchmark scenario."""
    task = tasks["multi_turn_base_0"]
    docs = {doc["name"]: doc for doc in task.tool_docs(task.num_turns)}
    with ToolSession.for_task(task) as env:
        result = env.execute("cd(folder='document/x')")
        before = copy.deepcopy(env.state())
        augmented, hint, _ = augment(env, "cd(folder='document/x')", result, docs, rules=DEFAULT_RULES)
        assert env.state() == before
    assert hint is not None and hint.kind == "file_system.path_not_allowed"
    assert augmented.startswith(result + "\nHint: cd moves one directory level at a time")


if __name__ == "__main__":  # child process: run the cases of one release (see `outcomes`)
    warnings.simplefilter("error", HintRuleWarning)  # a broken rule fails here as under pytest
    print(json.dumps([run_case(sys.argv[1], tuple(calls)) for calls in json.loads(sys.stdin.read())]))
