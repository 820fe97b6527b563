"""Who a program under test runs as, with what environment, in which folder.

A submission is code netlab does not trust, often run as root (the real reachability check
asks for it). So, wherever netlab starts one (`netlab.check.program.Program`):

* **Not as root.** As root, the program runs as another user (`RunAs`): ``--user NAME|UID``,
  or by default the user who ran ``sudo`` (``$SUDO_UID``: a student checking their own server
  keeps reading their own files), else an unused uid netlab picks (no passwd entry, nothing
  on the machine belongs to it). A folder of submissions always gets an unused uid per
  submission, unless ``--user`` names one: then no two of them share a process count or a
  file, and none can reach the grader's files. In a user namespace (no root) the program
  runs as that namespace's "root" but with every capability dropped (``setpriv``): it can do
  what your own uid can, nothing more, and cannot reach into the checker that runs beside
  it. Either way ``no_new_privs`` is set: a setuid program (``su``, ``sudo``) gains nothing.
* **A minimal environment**: ``PATH``, ``HOME`` (a private directory of its own), ``LANG``,
  ``TERM`` and ``PYTHONUNBUFFERED=1``, plus what ``--env NAME`` passes; never the grader's
  tokens.
* **A private copy of its submission's folder** (`Workspace`): grading a folder, each
  submission runs in a copy of the directory its file is in, made for it and removed after
  (regular files and directories only; symbolic links are copied as links, never followed;
  at most `COPY_LIMIT` bytes), so it cannot change another's files or its own original.
  The copy sits in a directory with a random name inside a directory others cannot list.
"""

from __future__ import annotations

import os
import pwd
import random
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .. import netns
from ..errors import NetlabError, UsageError

#: where netlab picks unused uids for the programs it runs as root: far above any real user's
#: (and above the ranges /etc/subuid hands out), each with a group of the same number
UID_RANGE = (2_000_000_000, 2_100_000_000)
#: the environment a program gets, besides HOME and what --env passes
PASSED = ("PATH", "LANG", "TERM")
DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
#: the most a submission's folder may hold to be copied
COPY_LIMIT = 256 << 20
#: setpriv: no capabilities, and none regained by being uid 0 (user namespaces)
_NO_CAPS = ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
            "--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked,+keep_caps_locked"]


@dataclass(frozen=True)
class RunAs:
    """Who a program runs as: `uid`/`gid` (None: this process's own user), whether it loses its
    capabilities (`drop_caps`: "root" in a user namespace), and the names of the variables of
    netlab's own environment it also gets (`env`)."""

    uid: int | None = None
    gid: int | None = None
    name: str = ""
    drop_caps: bool = False
    env: tuple[str, ...] = ()

    def describe(self) -> str:
        """For the report: "ran as nobody (uid 65534)"."""
        if self.uid is not None:
            return f"ran as {self.name or f'uid {self.uid}'}"
        if self.drop_caps:
            return "ran as your own user, without capabilities"
        return "ran as your own user" if os.geteuid() != 0 else "ran as root (--user root)"

    def prefix(self) -> list[str]:
        """The command that puts the program in this state before it runs (``setpriv``), or
        nothing where setpriv is missing (then `popen` switches the user, without
        no_new_privs)."""
        tool = _setpriv()
        if tool is None:
            return []
        argv = [tool, "--no-new-privs"]
        if self.uid is not None:
            argv += [f"--reuid={self.uid}", f"--regid={self.gid if self.gid is not None else self.uid}",
                     "--clear-groups"]
        if self.drop_caps:
            argv += _NO_CAPS
        return [*argv, "--"]

    def popen(self) -> dict[str, object]:
        """Arguments for subprocess.Popen that switch the user where setpriv cannot."""
        if self.uid is None or _setpriv() is not None:
            return {}
        return {"user": self.uid, "group": self.gid if self.gid is not None else self.uid, "extra_groups": []}

    def environment(self, home: str, outside: Mapping[str, str] | None = None) -> dict[str, str]:
        """The program's whole environment."""
        source = os.environ if outside is None else outside
        env = {name: source.get(name, DEFAULTS[name]) for name in PASSED}
        env.update({name: source[name] for name in self.env if name in source})
        env["HOME"] = source["HOME"] if "HOME" in self.env and "HOME" in source else home
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def as_json(self) -> dict[str, object]:
        return {"uid": self.uid, "gid": self.gid, "name": self.name, "drop_caps": self.drop_caps,
                "env": list(self.env)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RunAs:
        uid, gid = data.get("uid"), data.get("gid")
        env = data.get("env") or []
        return cls(uid if isinstance(uid, int) else None, gid if isinstance(gid, int) else None,
                   str(data.get("name", "")), bool(data.get("drop_caps")),
                   tuple(str(name) for name in env) if isinstance(env, list) else ())


def _setpriv() -> str | None:
    return shutil.which("setpriv", path=os.pathsep.join([os.environ.get("PATH", ""), *netns.SBIN]))


def check_env_names(names: Sequence[str]) -> tuple[str, ...]:
    """--env NAME values, checked. Raises UsageError for one that is no variable name."""
    for name in names:
        if not name or "=" in name or "\0" in name:
            raise UsageError(f"--env takes the name of a variable of your environment to pass on, not {name!r}")
    return tuple(names)


def unused_uid(taken: set[int] | None = None) -> int:
    """A uid no user of this machine has (no passwd entry) and not in `taken`."""
    rng = random.SystemRandom()
    for _ in range(1000):
        uid = rng.randrange(*UID_RANGE)
        if taken and uid in taken:
            continue
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise NetlabError("could not find an unused uid to run the program as")


def resolve_user(user: str | None, *, isolation_mode: str | None, folder: bool,
                 env: Sequence[str] = ()) -> RunAs | None:
    """The `RunAs` for ``--user`` (None: the default), before anything runs; None where each
    program gets an unused uid of its own (a folder, as root: `for_submission`).

    Raises: UsageError for a user that does not exist, or --user without root."""
    names = check_env_names(env)
    root = os.geteuid() == 0
    if user is not None and user != "root" and not root:
        raise UsageError("--user needs root: as a normal user, programs run as you (in a user namespace, without "
                         "capabilities, where the kernel allows one)")
    if user == "root" or (user is not None and user.isdigit() and int(user) == 0):
        return RunAs(name="root", env=names) if root else RunAs(drop_caps=isolation_mode == "user", env=names)
    if not root:
        return RunAs(drop_caps=isolation_mode == "user", env=names)
    if user is not None:
        return named_user(user, names)
    sudo = os.environ.get("SUDO_UID", "")
    if not folder and sudo.isdigit() and int(sudo) != 0:
        gid = os.environ.get("SUDO_GID", "")
        name = os.environ.get("SUDO_USER", "") or f"uid {sudo}"
        return RunAs(int(sudo), int(gid) if gid.isdigit() else int(sudo), f"{name} (who ran sudo)", env=names)
    if folder:
        return None
    uid = unused_uid()
    return RunAs(uid, uid, f"uid {uid} (an unused uid netlab picked)", env=names)


def named_user(user: str, env: tuple[str, ...] = ()) -> RunAs:
    """``--user NAME`` or ``--user UID``. Raises UsageError for a name this machine lacks."""
    if user.isdigit():
        uid = int(user)
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return RunAs(uid, uid, f"uid {uid}", env=env)
        return RunAs(uid, entry.pw_gid, f"{entry.pw_name} (uid {uid})", env=env)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user on this machine (give a name from /etc/passwd, or a "
                         f"number)") from None
    return RunAs(entry.pw_uid, entry.pw_gid, f"{user} (uid {entry.pw_uid})", env=env)


def for_submission(template: RunAs | None, taken: set[int], env: Sequence[str] = ()) -> RunAs:
    """The user one submission of a folder runs as: `template`, or (None) an unused uid not
    in `taken` (which it joins)."""
    if template is not None:
        return template
    uid = unused_uid(taken)
    taken.add(uid)
    return RunAs(uid, uid, f"uid {uid} (an unused uid netlab picked)", env=tuple(env))


# -- the program's own folders ---------------------------------------------------------------------


@dataclass
class Workspace:
    """A program's private directories: `home` (its HOME) and, grading a folder, `folder`, a
    copy of its submission's directory, with `path` the copy of its file. Removed by `remove`."""

    root: str
    home: str
    folder: str | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, run_as: RunAs, submission: str | None = None) -> Workspace:
        """Make the directories (and copy the submission's folder) for `run_as`, in a new
        `temporary_root`.

        Raises: NetlabError when the folder cannot be copied (too large, unreadable)."""
        root = temporary_root()
        space = cls(root, os.path.join(root, f"home-{secrets.token_hex(8)}"))
        try:
            os.mkdir(space.home, 0o700)
            if submission is not None:
                original = os.path.abspath(submission)
                source = os.path.dirname(original)
                inside = os.path.join(root, f"work-{secrets.token_hex(8)}")
                os.mkdir(inside, 0o700)
                space.folder = os.path.join(inside, os.path.basename(source) or "submission")
                _copy(source, space.folder)
                space.path = os.path.join(space.folder, os.path.basename(original))
                _own(inside, run_as)
            _own(space.home, run_as)
        except BaseException:
            space.remove()
            raise
        return space

    def remove(self) -> None:
        """Remove every directory, whatever the program made of them."""
        remove_tree(self.root)
        _ROOTS.discard(self.root)


#: every `temporary_root` made and not removed yet (`remove_all`)
_ROOTS: set[str] = set()


def temporary_root() -> str:
    """A new directory for programs' private directories (under the temporary directory):
    others may pass through it to what they own, and list nothing (0711). Known to
    `remove_all` until `remove_tree` removes it."""
    root = tempfile.mkdtemp(prefix="netlab-check-")
    os.chmod(root, 0o711)
    _ROOTS.add(root)
    return root


def remove_all() -> None:
    """Remove every private directory not removed yet: for a netlab being stopped, whose
    clean-up a second Ctrl-C cut short (`netlab.check.guard.run`)."""
    for root in list(_ROOTS):
        remove_tree(root)


def remove_tree(path: str) -> None:
    """Remove `path` and everything in it, whatever a program made of it (a directory it
    made unreadable is opened up first); nothing if it is gone."""

    def opened_up(_function: object, where: str, _exc: object) -> None:
        for each in (os.path.dirname(where), where):
            try:
                if not os.path.islink(each):
                    os.chmod(each, 0o700)
            except OSError:
                pass
        if os.path.isdir(where) and not os.path.islink(where):
            shutil.rmtree(where, ignore_errors=True)
        else:
            _unlink(where)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=opened_up)
    _ROOTS.discard(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _copy(source: str, target: str) -> None:
    """Copy the directory `source` to `target`: directories and regular files only, symbolic
    links as links (never followed), at most `COPY_LIMIT` bytes. Raises NetlabError."""
    total = 0
    for top, dirs, files in os.walk(source):
        relative = os.path.relpath(top, source)
        here = target if relative == "." else os.path.join(target, relative)
        os.makedirs(here, mode=0o700, exist_ok=True)
        for name in dirs + files:
            origin, copy = os.path.join(top, name), os.path.join(here, name)
            try:
                info = os.lstat(origin)
                if stat.S_ISLNK(info.st_mode):
                    os.symlink(os.readlink(origin), copy)
                    if name in dirs:
                        dirs.remove(name)
                elif stat.S_ISREG(info.st_mode):
                    total += info.st_size
                    if total > COPY_LIMIT:
                        raise NetlabError(f"the submission's folder {source} holds more than {COPY_LIMIT >> 20} MiB: "
                                          f"too much to copy for each check (put each submission in a folder of "
                                          f"its own)")
                    _copy_file(origin, copy, info.st_mode)
            except OSError as exc:
                raise NetlabError(f"cannot copy the submission's folder: {origin}: {exc.strerror or exc}") from None


def _copy_file(origin: str, copy: str, mode: int) -> None:
    """Copy one regular file's bytes, opened without following a link swapped in meanwhile."""
    with os.fdopen(os.open(origin, os.O_RDONLY | os.O_NOFOLLOW), "rb") as source, open(copy, "xb") as target:
        shutil.copyfileobj(source, target)
    os.chmod(copy, (mode & 0o777) | 0o600)


def _own(top: str, run_as: RunAs) -> None:
    """Give `top` and everything in it to the program's user (where that is another user)."""
    if run_as.uid is None or os.geteuid() != 0:
        return
    gid = run_as.gid if run_as.gid is not None else run_as.uid
    for path, dirs, files in os.walk(top):
        os.lchown(path, run_as.uid, gid)
        for name in dirs + files:
            os.lchown(os.path.join(path, name), run_as.uid, gid)


__all__ = ["COPY_LIMIT", "RunAs", "Workspace", "check_env_names", "for_submission", "named_user", "remove_all",
           "remove_tree", "resolve_user", "temporary_root", "unused_uid"]
