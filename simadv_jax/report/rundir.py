"""Run directories: one folder holds the outputs of one run of one command, and nothing else is ever written into.

A run directory is marked by its `config.json` (the parsed configuration that decides the results). The rules, for
every command that writes one (search, regions, sweeps):
  - a new run needs a folder that does not exist yet or is empty;
  - a folder with this command's config.json is continued only with --resume, and only with the same values
    of the fields that decide the results; a field the run predates counts as its default value (a config.json
    with a field this command does not know is not this command's);
  - config.json also records content fingerprints of the loaded inputs (FINGERPRINTS: the head and albedo
    model by flag), which --resume needs to be the same; a run that predates them resumes with a warning that
    they could not be checked;
  - a non-empty folder without config.json, or whose config.json is not this command's, is refused (a run whose
    config.json was deleted cannot be trusted: its checkpoints would be resumed under another label);
  - a file-system failure is one ValueError naming --output_dir and the OS error.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping, Optional

from simadv_jax.report.files import read_json_object, write_bytes_atomic, write_json_atomic

CONFIG_JSON = "config.json"
CONFIG_FLAGS = "config.flags"
FINGERPRINTS = "fingerprints"  # config.json's {flag: content fingerprint} of the loaded inputs
_LISTED = 5  # entries named when refusing a folder


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says how far it got and to continue with --resume. Everything completed
    is on disk (every command checkpoints what it finished)."""


def os_error(output_dir: str, error: OSError, what: Optional[str] = None) -> ValueError:
    """The one-line error for a file-system failure under --output_dir (what: the file or step that failed)."""
    where = f" ({what})" if what else ""
    return ValueError(f"--output_dir={output_dir}: {error.strerror or error}{where}")


def _contents(output_dir: str) -> list[str]:
    names = sorted(os.listdir(output_dir))
    shown = [name + ("/" if os.path.isdir(os.path.join(output_dir, name)) else "") for name in names[:_LISTED]]
    return shown + ([f"... {len(names) - _LISTED} more"] if len(names) > _LISTED else [])


def check(output_dir: str, *, command: str, resume: bool, recognize: Callable[[dict], bool],
          compare: Callable[[dict], None]) -> None:
    """Applies the rules above without writing anything.

    command: the command's name for messages ("search"). recognize: whether a found config.json's dict (without
    FINGERPRINTS) is this command's config. compare: raises ValueError naming the flag when a field of it that
    decides the results differs from this run's.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir: {output_dir} is a file, not a folder")
    marker = os.path.join(output_dir, CONFIG_JSON)
    if os.path.exists(marker):
        previous = {k: v for k, v in read_json_object(marker, "--output_dir").items() if k != FINGERPRINTS}
        if not recognize(previous):
            raise ValueError(f"--output_dir: {output_dir} holds another kind of run ({CONFIG_JSON} is not a "
                             f"{command}'s); choose another folder")
        if not resume:
            raise ValueError(f"--output_dir: {output_dir} already holds a {command}; pass --resume to continue it "
                             "or choose another folder")
        compare(previous)
    elif resume:
        raise ValueError(f"--resume: {output_dir} holds no {command} to resume (no {CONFIG_JSON})")
    elif os.path.isdir(output_dir) and os.listdir(output_dir):
        raise ValueError(f"--output_dir: {output_dir} is not empty and holds no {command} run (no {CONFIG_JSON}; "
                         f"found {', '.join(_contents(output_dir))}); choose a new or empty folder")


def check_config(output_dir: str, config: dict, *, command: str, resume: bool, defaults: Mapping, free: tuple = (),
                 flags: Optional[Mapping[str, str]] = None) -> None:
    """`check` for a command whose config.json holds `config` (a JSON-ready dict): a config.json whose keys are
    among config's is this command's, and --resume needs the same value of every key outside `free`, a key the
    saved config lacks counting as its value in `defaults` (a ValueError naming the flag, `flags.get(key, key)`)."""
    current, default = json.loads(json.dumps(config)), json.loads(json.dumps(dict(defaults)))

    def compare(saved: dict) -> None:
        for key, value in current.items():
            old = saved.get(key, default[key])
            if key not in free and old != value:
                flag = (flags or {}).get(key, key)
                predates = "" if key in saved else f": the run predates --{flag}, so it ran with the default"
                raise ValueError(f"--{flag}: --resume needs the same value as the {command} in {output_dir} "
                                 f"({old!r}{predates}), got {value!r}")

    check(output_dir, command=command, resume=resume, recognize=lambda saved: set(saved) <= set(current),
          compare=compare)


def check_fingerprints(output_dir: str, fingerprints: Mapping[str, str], *, command: str, resume: bool,
                       log: Callable[[str], None]) -> None:
    """On --resume (after `check`), the fingerprints config.json recorded against `fingerprints` ({flag: content
    fingerprint} of this run's loaded inputs): a ValueError naming the flag and both fingerprints when one
    differs; a run that recorded none resumes with one warning to `log`."""
    if not resume:
        return
    saved = read_json_object(os.path.join(output_dir, CONFIG_JSON), "--output_dir").get(FINGERPRINTS)
    named = " / ".join(f"--{flag}" for flag in fingerprints)
    if saved is None:
        log(f"warning: {named}: the {command} in {output_dir} predates content fingerprints in {CONFIG_JSON}, so "
            "the head could not be checked: resuming as if it ran on this one")
        return
    for flag, value in fingerprints.items():
        if saved.get(flag) != value:
            raise ValueError(f"--{flag}: --resume needs the same content as the {command} in {output_dir} "
                             f"(fingerprint {saved.get(flag)}), got fingerprint {value}: it changed since the run "
                             "started (a rebuilt embedded head, a file replaced in place); start a new run in another "
                             "folder")


def create(output_dir: str, config: dict, fingerprints: Mapping[str, str], flags_text: Optional[str] = None,
           subdirectories: tuple = ()) -> None:
    """Writes config.json (`config` and FINGERPRINTS: `fingerprints`) and config.flags, and creates
    `subdirectories`, after `check` and `check_fingerprints`."""
    try:
        for name in subdirectories:
            os.makedirs(os.path.join(output_dir, name), exist_ok=True)
        write_json_atomic(os.path.join(output_dir, CONFIG_JSON), {**config, FINGERPRINTS: dict(fingerprints)})
        if flags_text is not None:
            write_bytes_atomic(os.path.join(output_dir, CONFIG_FLAGS), flags_text.encode())
    except OSError as e:
        raise os_error(output_dir, e, CONFIG_JSON) from None
