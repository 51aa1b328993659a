"""Hints for GorillaFileSystem, the simulated shell: every tool works on the current directory only.

Most of its errors are one terse line ("No such file or directory") that hides the real cause: a path
where a plain name is expected, an item that lives in another directory, or a directory where a file
is expected. These rules name the cause and the kind of fix, and only look up the names the model
itself gave in the current directory; they never list what a directory holds.
"""

from __future__ import annotations

from typing import Any

from envtune.feedback.core import FeedbackContext, hint_rule

# Arguments that name an item of the current directory, in the order the backend checks them.
NAME_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "cd": ("folder",),
    "mkdir": ("dir_name",),
    "rmdir": ("dir_name",),
    "touch": ("file_name",),
    "echo": ("file_name",),
    "cat": ("file_name",),
    "wc": ("file_name",),
    "grep": ("file_name",),
    "sort": ("file_name",),
    "tail": ("file_name",),
    "rm": ("file_name",),
    "diff": ("file_name1", "file_name2"),
    "mv": ("source", "destination"),
    "cp": ("source", "destination"),
}
FILE_READERS = ("cat", "wc", "grep", "sort", "tail", "diff")
VERBS = {"mv": "move", "cp": "copy"}
# The characters the backend refuses in new names (`_validate_file_or_directory_name`).
FORBIDDEN_CHARACTERS = '|/\\?%*:"><'


def _quoted(values: list[str], joiner: str = "or") -> str:
    return f" {joiner} ".join(f"'{value}'" for value in values)


def _names(context: FeedbackContext, arguments: tuple[str, ...]) -> list[str]:
    """The string values the call gave for these arguments."""
    return [value for name in arguments if isinstance(value := context.arguments.get(name), str)]


def _looked_up(context: FeedbackContext) -> list[str]:
    """The names the failing check looked for: mv and cp check the source before the destination."""
    tool = context.call.name
    if tool in VERBS:
        return _names(context, ("destination",) if "in destination" in context.error else ("source",))
    return _names(context, NAME_ARGUMENTS[tool])


def _entry(context: FeedbackContext, name: str) -> str | None:
    """'directory', 'file' or None: what `name` is in the current directory (a read-only look-up)."""
    item: Any = context.instance._current_dir.contents.get(name)
    if item is None:
        return None
    return "directory" if hasattr(item, "contents") else "file"


@hint_rule("file_system.path_not_allowed", "parameter_constraint",
           r"Unsupported path|No such|Invalid character|in destination", tools=tuple(NAME_ARGUMENTS))
def path_not_allowed(context: FeedbackContext, match) -> str | None:
    """A path given where only a name in the current directory is accepted (the error rarely says so)."""
    paths = [name for name in _looked_up(context) if "/" in name]
    if not paths:
        return None
    tool = context.call.name
    if tool == "cd":
        return (f"cd moves one directory level at a time, so it does not accept a path like '{paths[0]}'. "
                "Call cd once per level with just the directory's name ('..' goes up one level).")
    if tool in VERBS and "in destination" in context.error:
        verb = VERBS[tool]
        return (f"The destination must be a plain name in the current directory, not a path like '{paths[0]}': "
                f"either a directory here (to {verb} the item into it) or a new name. To reach a deeper "
                f"directory, {verb} the item into a directory here, cd into it, and go on from there with mv.")
    return (f"{tool} only takes the name of an item in the current directory, without '/', so a path like "
            f"{_quoted(paths, 'and')} is not allowed. Go to the right directory first with cd (one level at "
            f"a time), then call {tool} with just the name.")


@hint_rule("file_system.is_a_directory", "parameter_constraint",
           r"Is a directory|No such file|has no attribute '_write'", tools=(*FILE_READERS, "echo"))
def is_a_directory(context: FeedbackContext, match) -> str | None:
    """A directory given to a tool that reads or writes files (wc, grep, ... just say 'No such file')."""
    directories = [name for name in _looked_up(context) if _entry(context, name) == "directory"]
    if not directories:
        return None
    tool, name = context.call.name, directories[0]
    if tool == "echo":
        return (f"'{name}' is a directory, not a file, and echo can only write into a file. Give the name "
                "of a file instead (cd into the directory first if the file is inside it).")
    return (f"'{name}' is a directory, not a file, and {tool} only works on files. To use a file inside it, "
            "cd into it and use ls to see its files.")


@hint_rule("file_system.not_a_directory", "parameter_constraint", r"No such|Not a directory", tools=("cd", "rmdir"))
def not_a_directory(context: FeedbackContext, match) -> str | None:
    """A file given to cd or rmdir (cd even reports it as missing)."""
    files = [name for name in _looked_up(context) if _entry(context, name) == "file"]
    if not files:
        return None
    if context.call.name == "cd":
        return (f"'{files[0]}' is a file, not a directory, so cd cannot enter it. cd only goes into "
                "directories ('..' for the parent); read a file with cat instead.")
    return (f"'{files[0]}' is a file, not a directory, and rmdir only removes empty directories. "
            "Use rm to delete a file.")


@hint_rule("file_system.not_in_current_directory", "state_prerequisite", r"No such",
           tools=("cd", *FILE_READERS, "rm", "rmdir", "mv", "cp"))
def not_in_current_directory(context: FeedbackContext, match) -> str | None:
    """The item is not in the current directory; it may exist elsewhere, which the model must find."""
    missing = [name for name in _looked_up(context) if _entry(context, name) is None]
    if not missing:
        return None
    if context.call.name == "cd":
        return (f"There is no directory '{missing[0]}' right inside the current directory, and cd only "
                "enters a directory directly below where you are ('..' goes up). Use ls to see what is "
                "here, or find to search the directories below.")
    return (f"There is nothing named {_quoted(missing)} in the current directory, which is the only place "
            f"{context.call.name} looks. Use ls to see what is here, or find to search the directories below "
            "(pwd shows where you are); then cd to the directory that holds it, one level at a time.")


@hint_rule("file_system.echo_file_missing", "dependency_missing", r"No such file", tools=("echo",))
def echo_file_missing(context: FeedbackContext, match) -> str:
    """The newer release's echo no longer creates the file it writes to."""
    name = context.arguments.get("file_name")
    text = ("echo only writes into a file that already exists in the current directory, and there is no "
            f"'{name}' here. If the file is in another directory, locate it with find and cd there; if it "
            "should be a new file, create it with touch first.")
    if name == "None":
        text += " To only display the content, leave file_name out."
    return text


@hint_rule("file_system.cd_above_root", "state_prerequisite", r"already the root", tools=("cd",))
def cd_above_root(context: FeedbackContext, match) -> str:
    return ("You are already in the top-level (root) directory, so there is no parent to go back to. "
            "Use ls to see the directories here and cd into one of them by name.")


@hint_rule("file_system.invalid_character", "format_mismatch", r"Invalid character",
           tools=("mkdir", "touch", "echo", "cat"))
def invalid_character(context: FeedbackContext, match) -> str:
    """Name the offending characters; '/' was already explained as a path."""
    name = _looked_up(context)[0]
    found = [character for character in FORBIDDEN_CHARACTERS if character in name]
    forbidden = " ".join(FORBIDDEN_CHARACTERS)
    return (f"Names cannot contain any of {forbidden}, and '{name}' contains {_quoted(found, 'and')}. Use a name "
            "without these characters (check the exact name with ls if the item already exists).")


@hint_rule("file_system.name_taken", "parameter_constraint", r"File exists", tools=("mkdir", "touch"))
def name_taken(context: FeedbackContext, match) -> str:
    name = _looked_up(context)[0]
    thing = _entry(context, name)
    text = f"There is already a {thing} named '{name}' in the current directory."
    if context.call.name == "mkdir" and thing == "directory":
        return f"{text} If it is the directory you need, cd into it; otherwise pick a different name."
    if context.call.name == "touch" and thing == "file":
        return (f"{text} touch does not change it: to replace its content, use echo with this file_name; "
                "otherwise pick a different name.")
    return f"{text} Pick a different name."


@hint_rule("file_system.wc_invalid_mode", "parameter_constraint", r"invalid mode", tools=("wc",))
def wc_invalid_mode(context: FeedbackContext, match) -> str:
    mode = context.arguments.get("mode")
    return f"wc mode must be 'l' (lines), 'w' (words) or 'c' (characters); {mode!r} is not one of them."


@hint_rule("file_system.directory_not_empty", "state_prerequisite", r"Directory not empty", tools=("rmdir",))
def directory_not_empty(context: FeedbackContext, match) -> str:
    name = context.arguments.get("dir_name")
    return (f"rmdir only removes empty directories, and '{name}' still has something in it. Empty it first "
            "(cd into it, ls, and rm each item), or, if it should go together with everything inside, "
            "remove it with rm instead.")


@hint_rule("file_system.destination_taken", "parameter_constraint", r"File exists|already exists in directory",
           tools=tuple(VERBS))
def destination_taken(context: FeedbackContext, match) -> str:
    """cp reports this as a raw Python error (its own check for it can never fire)."""
    tool, source, destination = context.call.name, context.arguments.get("source"), context.arguments.get("destination")
    return (f"The directory '{destination}' already holds an item named '{source}', and {tool} never replaces "
            "it. Pick another destination or a new name, or ask the user what to do with the existing item.")


@hint_rule("file_system.destination_is_a_file", "parameter_constraint", r"Not a directory", tools=tuple(VERBS))
def destination_is_a_file(context: FeedbackContext, match) -> str:
    tool, destination = context.call.name, context.arguments.get("destination")
    verb = VERBS[tool]
    return (f"'{destination}' is an existing file in the current directory, and {tool} never overwrites a file. "
            f"To {verb} the item into a directory, give the name of a directory here; to {verb} it under a "
            "new name, choose a name that is not taken yet (ls shows what is here).")


@hint_rule("file_system.find_path_not_found", "parameter_constraint", r"No such file", tools=("find",))
def find_path_not_found(context: FeedbackContext, match) -> str:
    """The newer release's find checks its start path; the paper's release ignores it."""
    path = str(context.arguments.get("path"))
    text = (f"find cannot start from '{path}': it is not a directory reachable from here. Relative paths "
            "start at the current directory (pwd shows where you are); leave path out to search from the "
            "current directory.")
    if path.startswith("/"):
        text += (" A path starting with '/' is read from inside the top-level directory, so it does not repeat "
                 "that directory's own name.")
    return text


# The order they are tried in.
RULES = (
    path_not_allowed, is_a_directory, not_a_directory, not_in_current_directory, echo_file_missing, cd_above_root,
    invalid_character, name_taken, wc_invalid_mode, directory_not_empty, destination_taken, destination_is_a_file,
    find_path_not_found,
)
