"""How many CPUs this process may really use: its affinity mask and its cgroup CPU quota.

OpenMP (libgomp) starts one thread per CPU in the affinity mask. In a container with a CPU quota
(Docker ``--cpus``, Kubernetes CPU limits) the kernel lets the cgroup run only ``quota / period``
CPUs' worth of time per period and throttles it for the rest of the period once that is spent:
more threads than the quota then wait for each other instead of running. This module reads the
quota so that fastnn can default to fewer threads.

Both cgroup versions are read:

* v2 (one hierarchy): ``cpu.max`` holds ``"<quota> <period>"`` in microseconds, or
  ``"max <period>"`` for no quota. It is read in the process's own cgroup (the ``0::/path`` line
  of ``/proc/self/cgroup``) and in every parent up to the mount point, because a parent's quota
  bounds its children: the smallest quota wins.
* v1 (one hierarchy per controller): ``cpu.cfs_quota_us`` (-1 for no quota) and
  ``cpu.cfs_period_us`` in the cgroup of the ``cpu`` controller (the ``N:cpu,cpuacct:/path``
  line), under that controller's mount (found in ``/proc/self/mountinfo``). Parents count too.

Every read is defensive: a missing or unreadable file, garbage, a zero or negative period or an
implausibly large value means "no quota known" (None), never an exception. A quota is advice
about speed; nothing should fail because ``/proc`` or ``/sys`` looks unusual.

The module imports only the standard library so that it imports fast.
"""

from __future__ import annotations

import os
import re
from typing import Optional

__all__ = ["affinity_cpus", "cgroup_quota", "default_threads"]

# The kernel accepts CFS periods from 1 ms to 1 s; a longer period is not something it would
# report, so the file is garbage. Shorter ones are accepted (only zero and negative are refused)
# so that a hand-made setup with a small period still reads.
_MAX_PERIOD_US = 1_000_000
# No machine has a million CPUs: a larger quota is garbage or means "unlimited" in effect, and
# "no quota" gives the same thread count (the affinity mask), so it is read as None.
_MAX_QUOTA_CPUS = float(1 << 20)
# At most 18 decimal digits, so any value read fits an int64 as it does in the kernel.
_INT_RE = re.compile(r"-?[0-9]{1,18}")
# The first entry of OMP_NUM_THREADS's comma list (a thread count per nesting level).
# A sign is accepted so that "0" and "-2" can be raised to 1 rather than ignored; more than 18
# digits is not a count anyone means and is ignored like any other garbage.
_OMP_RE = re.compile(r"\s*([+-]?[0-9]{1,18})\s*")
# cgroup files hold a few bytes; /proc/self/mountinfo can reach a few hundred kB on a busy host.
_SMALL_READ = 4096
_LARGE_READ = 4 << 20


def affinity_cpus() -> int:
    """The number of CPUs in this process's affinity mask (at least 1).

    ``len(os.sched_getaffinity(0))`` where the platform has it (Linux), otherwise
    ``os.cpu_count()``, otherwise 1.

    Examples
    --------
    >>> affinity_cpus() >= 1
    True
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            n = len(getaffinity(0))
        except OSError:
            n = 0
        if n >= 1:
            return n
    return max(1, os.cpu_count() or 1)


def _read_text(path: str, limit: int = _SMALL_READ) -> Optional[str]:
    """The first ``limit`` bytes of the file at ``path`` as text, or None if it cannot be read.

    Non-blocking, so that a FIFO put where a cgroup file was expected returns instead of hanging
    (regular, /proc and /sys files ignore the flag). Undecodable bytes are kept as surrogates
    (``surrogateescape``), so paths read from the file name the same files again.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):        # ValueError: a path with a NUL byte
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit)
    except (OSError, ValueError):
        return None
    return data.decode("utf-8", "surrogateescape")


def _parse_int(token: str) -> Optional[int]:
    """``token`` as a decimal integer (ASCII digits, an optional minus, at most 18 digits)."""
    if _INT_RE.fullmatch(token) is None:
        return None
    return int(token)


def _quota_cpus(quota: Optional[int], period: Optional[int]) -> Optional[float]:
    """``quota / period`` when both are plausible microsecond counts, otherwise None."""
    if quota is None or period is None:
        return None
    if not (0 < period <= _MAX_PERIOD_US) or quota <= 0:
        return None
    cpus = quota / period
    return cpus if cpus <= _MAX_QUOTA_CPUS else None


def _v2_level(directory: str) -> Optional[float]:
    """The quota of one v2 cgroup directory: ``cpu.max`` = "<quota> <period>" in CPUs; None
    for "max <period>" (no quota at this level) and for a missing or malformed file."""
    text = _read_text(os.path.join(directory, "cpu.max"))
    if text is None:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _quota_cpus(_parse_int(fields[0]), _parse_int(fields[1]))


def _v1_level(directory: str) -> Optional[float]:
    """The quota of one v1 cpu-controller directory: ``cpu.cfs_quota_us / cpu.cfs_period_us``;
    None for a quota of -1 (none at this level) and for missing or malformed files."""
    quota_text = _read_text(os.path.join(directory, "cpu.cfs_quota_us"))
    period_text = _read_text(os.path.join(directory, "cpu.cfs_period_us"))
    if quota_text is None or period_text is None:
        return None
    quota_fields, period_fields = quota_text.split(), period_text.split()
    if len(quota_fields) != 1 or len(period_fields) != 1:
        return None
    # -1 (no quota) and any other non-positive value fall out in _quota_cpus.
    return _quota_cpus(_parse_int(quota_fields[0]), _parse_int(period_fields[0]))


def _own_cgroups(proc_self_cgroup: str) -> tuple[Optional[str], Optional[str]]:
    """The process's v2 cgroup path (the ``0::/path`` line) and its v1 ``cpu`` controller
    cgroup path (the line whose comma-separated controllers include ``cpu``), each None if
    absent."""
    text = _read_text(proc_self_cgroup, _LARGE_READ)
    v2: Optional[str] = None
    v1: Optional[str] = None
    if text is None:
        return v2, v1
    for line in text.splitlines():
        parts = line.split(":", 2)       # "hierarchy-id:controllers:path"; the path may hold ':'
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        hierarchy, controllers, path = parts
        # A cgroup removed while the process is in it is shown with this suffix on v2.
        if path.endswith(" (deleted)"):
            path = path[:-len(" (deleted)")]
        if hierarchy == "0" and controllers == "":
            if v2 is None:
                v2 = path
        elif "cpu" in controllers.split(","):
            if v1 is None:
                v1 = path
    return v2, v1


def _unescape_mountinfo(field: str) -> str:
    """A mountinfo path with the kernel's octal escapes (``\\040`` for a space, ...) undone."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


_Mount = tuple[str, str]                 # (mount root inside the hierarchy, mount point)


def _cgroup_mounts(mountinfo: str) -> tuple[Optional[_Mount], Optional[_Mount]]:
    """The first cgroup v2 mount and the first cgroup v1 mount with the ``cpu`` controller in
    ``mountinfo``, each as (mount root inside the hierarchy, mount point), or None.

    A line reads ``id parent major:minor root mount-point options [optional fields] - fstype
    source super-options``; a v1 hierarchy lists its controllers in the super options.
    """
    v2: Optional[_Mount] = None
    v1: Optional[_Mount] = None
    text = _read_text(mountinfo, _LARGE_READ)
    if text is None:
        return v2, v1
    for line in text.splitlines():
        fields = line.split()
        # The optional fields end at a lone "-", never before the sixth field.
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if sep + 1 >= len(fields):
            continue
        fstype = fields[sep + 1]
        super_options = fields[sep + 3].split(",") if sep + 3 < len(fields) else []
        mount = (_unescape_mountinfo(fields[3]), _unescape_mountinfo(fields[4]))
        if fstype == "cgroup2" and v2 is None:
            v2 = mount
        elif fstype == "cgroup" and "cpu" in super_options and v1 is None:
            v1 = mount
    return v2, v1


def _levels(mount_root: str, mount_point: str, cgroup_path: str) -> list[str]:
    """The directories of ``cgroup_path`` and its parents, from the leaf up to the mount point.

    The mount shows the hierarchy from ``mount_root`` down (a container without its own cgroup
    namespace sees only its own cgroup, mounted at the usual place), so that prefix is dropped.
    When the path is not under the mount root or holds "..", the mount point alone is read: in
    a container it is the container's own cgroup. Directories that do not exist are listed all
    the same (reading them gives None), so a path the mount does not show ends at the mount
    point too.
    """
    def components(path: str) -> list[str]:
        return [c for c in path.split("/") if c not in ("", ".")]

    root_parts, path_parts = components(mount_root), components(cgroup_path)
    if path_parts[:len(root_parts)] == root_parts and ".." not in path_parts:
        relative = path_parts[len(root_parts):]
    else:
        relative = []
    return [os.path.join(mount_point, *relative[:k]) for k in range(len(relative), -1, -1)]


def _smallest(values: list[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _find_quota(root: str, proc_self_cgroup: str,
                mountinfo: str) -> Optional[tuple[float, str]]:
    """The smallest CPU quota over both cgroup versions and the version it came from
    ("cgroup v2" or "cgroup v1"), or None."""
    v2_path, v1_path = _own_cgroups(proc_self_cgroup)
    if v2_path is None and v1_path is None:
        return None                      # not in a cgroup we can see: nothing to read
    v2_mount, v1_mount = _cgroup_mounts(mountinfo)
    found: list[tuple[float, str]] = []
    if v2_path is not None:
        # Without a cgroup2 line in mountinfo, the v2 hierarchy is taken to be mounted at root.
        mount_root, mount_point = v2_mount if v2_mount is not None else ("/", root)
        quota = _smallest([_v2_level(d) for d in _levels(mount_root, mount_point, v2_path)])
        if quota is not None:
            found.append((quota, "cgroup v2"))
    if v1_path is not None:
        if v1_mount is not None:
            candidates = [v1_mount]
        else:
            # The usual mount points: the combined controllers (systemd's layout) or cpu alone.
            candidates = [("/", os.path.join(root, name)) for name in ("cpu,cpuacct", "cpu")]
        for mount_root, mount_point in candidates:
            if os.path.isdir(mount_point):
                levels = _levels(mount_root, mount_point, v1_path)
                quota = _smallest([_v1_level(d) for d in levels])
                if quota is not None:
                    found.append((quota, "cgroup v1"))
                break
    if not found:
        return None
    return min(found, key=lambda item: item[0])


def cgroup_quota(root: str = "/sys/fs/cgroup", proc_self_cgroup: str = "/proc/self/cgroup",
                 mountinfo: str = "/proc/self/mountinfo") -> Optional[float]:
    """This process's cgroup CPU quota in CPUs (1.5 for 150 ms per 100 ms), or None.

    None means no quota at any level of either cgroup version, or that none could be read
    (missing files, garbage, a zero or negative period, a quota above 2**20 CPUs). Never raises.

    Parameters
    ----------
    root : str
        Where the cgroup hierarchies are mounted when ``mountinfo`` does not say: the v2
        hierarchy's mount point, and the parent of the v1 fallbacks ``cpu,cpuacct`` and ``cpu``.
    proc_self_cgroup : str
        The process's cgroup membership, ``/proc/self/cgroup``. Without it there is no quota.
    mountinfo : str
        The mount table, ``/proc/self/mountinfo``: where the cgroup2 hierarchy and the v1
        hierarchy holding the ``cpu`` controller are mounted, and which part of each is shown.

    Examples
    --------
    >>> cgroup_quota(proc_self_cgroup="/nonexistent/cgroup") is None
    True
    """
    try:
        found = _find_quota(root, proc_self_cgroup, mountinfo)
    except Exception:                    # a last guard: a quota is advice and must never fail
        return None
    return None if found is None else found[0]


def _format_cpus(n: float) -> str:
    """``n`` CPUs to three decimals at most: "1 CPU", "1.5 CPUs", "0.333 CPUs"."""
    text = f"{n:.3f}".rstrip("0").rstrip(".")
    return f"{text} CPU" if text == "1" else f"{text} CPUs"


def default_threads(*, root: str = "/sys/fs/cgroup", proc_self_cgroup: str = "/proc/self/cgroup",
                    mountinfo: str = "/proc/self/mountinfo") -> tuple[int, str]:
    """The thread count fastnn should use by default, and where it comes from (for humans).

    The rules, first match wins:

    1. ``OMP_NUM_THREADS`` set and not blank: the first integer of its comma list, raised to 1
       if smaller, with source ``"OMP_NUM_THREADS=<value>"``. The user asked; OpenMP obeys the
       same variable. If it does not start with an integer, it is ignored (rules 2-3 apply and
       the source says so).
    2. A cgroup CPU quota (:func:`cgroup_quota`): ``max(1, min(affinity, int(quota)))`` - the
       quota rounded down, so at least 1, at most the affinity mask. Rounding down is
       deliberate: a throttled cgroup that runs more threads than its quota spends them all
       and then stalls them all until the period ends, which costs more than the idle fraction
       of a CPU that rounding down leaves (1.5 CPUs on 2 cores gives 1 thread).
    3. Otherwise the affinity mask (:func:`affinity_cpus`), which is also libgomp's default.

    The keyword arguments are those of :func:`cgroup_quota` (for tests).

    Examples
    --------
    >>> n, source = default_threads()
    >>> n >= 1 and isinstance(source, str)
    True
    """
    affinity = affinity_cpus()
    found = None
    try:
        found = _find_quota(root, proc_self_cgroup, mountinfo)
    except Exception:                    # as in cgroup_quota: never fail over advice
        found = None
    if found is None:
        computed, source = affinity, f"affinity mask: {_format_cpus(affinity)}"
    else:
        quota, version = found
        file = "cpu.max" if version == "cgroup v2" else "cpu.cfs_quota_us"
        computed = max(1, min(affinity, int(quota)))     # int() rounds down; < 1 CPU gives 1
        source = (f"{version} quota {_format_cpus(quota)} ({file}), "
                  f"affinity {_format_cpus(affinity)}")

    raw = os.environ.get("OMP_NUM_THREADS", "")
    if not raw.strip():
        return computed, source
    match = _OMP_RE.fullmatch(raw.split(",", 1)[0])
    if match is None:
        return computed, f"{source} (OMP_NUM_THREADS={raw!r} ignored: not a thread count)"
    requested = int(match.group(1))
    if requested < 1:
        return 1, f"OMP_NUM_THREADS={raw} (raised to 1)"
    return requested, f"OMP_NUM_THREADS={raw}"
