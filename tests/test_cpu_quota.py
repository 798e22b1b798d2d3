"""The CPU quota reader (fastnn/_cpu_quota.py) against fixture cgroup trees built in tmp_path.

Every test points all three paths (the cgroup root, /proc/self/cgroup and /proc/self/mountinfo)
into tmp_path, so what the machine running the tests has never leaks in, except in the tests
that say they read the real machine.
"""

import os
import subprocess
import sys

import pytest

from fastnn import _cpu_quota as Q

# Real-looking mountinfo lines; {point} is replaced by a mount point under tmp_path.
V1_LINE = ("35 25 0:30 {root} {point} rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup "
           "rw,{controllers}\n")
V2_LINE = ("29 23 0:26 {root} {point} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
           "cgroup2 rw,nsdelegate,memory_recursiveprot\n")
OTHER_LINES = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
               "23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class Tree:
    """A fixture: tmp_path/cgroup (the root), tmp_path/proc_cgroup and tmp_path/mountinfo."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = tmp_path / "cgroup"
        self.root.mkdir()
        self.proc = tmp_path / "proc_cgroup"
        self.mountinfo = tmp_path / "mountinfo"     # absent unless a test writes it

    def kwargs(self):
        return {"root": str(self.root), "proc_self_cgroup": str(self.proc),
                "mountinfo": str(self.mountinfo)}

    def quota(self):
        return Q.cgroup_quota(**self.kwargs())

    def threads(self):
        return Q.default_threads(**self.kwargs())

    def v2(self, cgroup_path, files, mount_point=None, mount_root="/"):
        """A v2 process in ``cgroup_path``; ``files`` maps directories (relative to the mount
        point, "" for it) to cpu.max contents. A mountinfo line is written only when
        ``mount_point`` is given (a directory name under tmp_path)."""
        _write(self.proc, f"0::{cgroup_path}\n")
        base = self.root
        if mount_point is not None:
            base = self.tmp / mount_point
            _write(self.mountinfo, OTHER_LINES + V2_LINE.format(root=mount_root, point=base))
        base.mkdir(exist_ok=True)
        for directory, content in files.items():
            _write(base / directory / "cpu.max", content)
        return base

    def v1(self, cgroup_path, files, mount_point, controllers="cpu,cpuacct", mount_root="/",
           in_mountinfo=True):
        """A v1 process whose ``controllers`` hierarchy holds it at ``cgroup_path``; ``files``
        maps directories to (cfs_quota_us, cfs_period_us) contents, None for a missing file."""
        _write(self.proc, f"12:pids:/x\n4:{controllers}:{cgroup_path}\n1:name=systemd:/x\n0::/\n")
        base = self.root / mount_point if not in_mountinfo else self.tmp / mount_point
        if in_mountinfo:
            _write(self.mountinfo, OTHER_LINES + V1_LINE.format(root=mount_root, point=base,
                                                                controllers=controllers))
        base.mkdir(exist_ok=True)
        for directory, (quota, period) in files.items():
            (base / directory).mkdir(parents=True, exist_ok=True)
            if quota is not None:
                _write(base / directory / "cpu.cfs_quota_us", quota)
            if period is not None:
                _write(base / directory / "cpu.cfs_period_us", period)
        return base


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path)


@pytest.fixture
def two_cpus(monkeypatch):
    """An affinity mask of 2 CPUs and no OMP_NUM_THREADS, whatever the machine."""
    monkeypatch.setattr(Q, "affinity_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


# --- cgroup v2 ---------------------------------------------------------------------------------

def test_v2_quota_at_the_leaf(tree):
    tree.v2("/kubepods/pod1/ctr", {"kubepods/pod1/ctr": "150000 100000\n",
                                   "kubepods/pod1": "max 100000\n", "kubepods": "max 100000\n"})
    assert tree.quota() == 1.5


def test_v2_quota_only_at_a_parent(tree):
    tree.v2("/kubepods/pod1/ctr", {"kubepods/pod1/ctr": "max 100000\n",
                                   "kubepods/pod1": "250000 100000\n"})
    assert tree.quota() == 2.5


@pytest.mark.parametrize("leaf, parent, expected", [("300000 100000", "50000 100000", 0.5),
                                                    ("50000 100000", "300000 100000", 0.5),
                                                    ("200000 50000", "500000 100000", 4.0)])
def test_v2_the_smallest_quota_on_the_way_up_wins(tree, leaf, parent, expected):
    tree.v2("/a/b", {"a/b": leaf, "a": parent})
    assert tree.quota() == expected


def test_v2_max_everywhere_is_no_quota(tree):
    tree.v2("/a/b", {"a/b": "max 100000\n", "a": "max 100000\n"})
    assert tree.quota() is None


def test_v2_quota_above_the_mount_point_is_not_read(tree, tmp_path):
    # Only the mount point and below belong to the hierarchy: tmp_path/cpu.max is outside it.
    _write(tmp_path / "cpu.max", "50000 100000")
    tree.v2("/a", {"a": "max 100000"})
    assert tree.quota() is None


def test_v2_mount_point_from_mountinfo(tree):
    # The root argument holds a different quota: mountinfo says where the hierarchy really is.
    _write(tree.root / "a" / "cpu.max", "400000 100000")
    tree.v2("/a", {"a": "75000 100000"}, mount_point="unified")
    assert tree.quota() == 0.75


def test_v2_mount_root_is_stripped_without_a_cgroup_namespace(tree):
    # The container sees its own cgroup /docker/abc mounted at the mount point.
    tree.v2("/docker/abc", {"": "120000 100000"}, mount_point="mnt", mount_root="/docker/abc")
    assert tree.quota() == 1.2


def test_v2_mount_root_is_stripped_below_the_mount(tree):
    # The mount shows /docker and below; the process is in /docker/abc/sub, shown as abc/sub.
    tree.v2("/docker/abc/sub", {"abc/sub": "130000 100000", "": "max 100000"}, mount_point="mnt",
            mount_root="/docker")
    assert tree.quota() == 1.3


def test_v2_path_outside_the_mount_root_reads_the_mount_point(tree):
    tree.v2("/other/abc", {"": "140000 100000", "other/abc": "10000 100000"}, mount_point="mnt",
            mount_root="/docker")
    assert tree.quota() == 1.4


def test_v2_missing_leaf_directory_reads_the_mount_point(tree):
    # /proc/self/cgroup names a path the mount does not show: the mount is the container's.
    tree.v2("/system.slice/docker-abc.scope", {"": "200000 100000"})
    assert tree.quota() == 2.0


# --- cgroup v1 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("controllers", ["cpu,cpuacct", "cpuacct,cpu", "cpu"])
def test_v1_via_mountinfo(tree, controllers):
    tree.v1("/grp", {"grp": ("50000\n", "100000\n"), "": ("-1\n", "100000\n")}, "v1cpu",
            controllers=controllers)
    assert tree.quota() == 0.5


def test_v1_minus_one_is_no_quota(tree):
    tree.v1("/grp", {"grp": ("-1\n", "100000\n"), "": ("-1\n", "100000\n")}, "v1cpu")
    assert tree.quota() is None


def test_v1_quota_at_a_parent(tree):
    tree.v1("/a/b", {"a/b": ("-1", "100000"), "a": ("300000", "100000")}, "v1cpu")
    assert tree.quota() == 3.0


def test_v1_mount_root_is_stripped(tree):
    tree.v1("/docker/abc", {"": ("250000", "100000")}, "v1cpu", mount_root="/docker/abc")
    assert tree.quota() == 2.5


@pytest.mark.parametrize("mount_point", ["cpu,cpuacct", "cpu"])
def test_v1_fallback_mount_points_under_root(tree, mount_point):
    tree.v1("/grp", {"grp": ("150000", "100000")}, mount_point, in_mountinfo=False)
    assert tree.quota() == 1.5


def test_v1_cpuacct_and_cpuset_mounts_are_not_the_cpu_controller(tree, tmp_path):
    # A cpuacct-only and a cpuset mount come first in mountinfo, each with quota-like files:
    # the quota is the cpu controller's.
    for name, quota in (("acct", "10000"), ("set", "20000")):
        _write(tmp_path / name / "cpu.cfs_quota_us", quota)
        _write(tmp_path / name / "cpu.cfs_period_us", "100000")
    tree.v1("/", {"": ("300000", "100000")}, "v1cpu", controllers="cpu")
    lines = tree.mountinfo.read_text()
    tree.mountinfo.write_text(V1_LINE.format(root="/", point=tmp_path / "acct",
                                             controllers="cpuacct")
                              + V1_LINE.format(root="/", point=tmp_path / "set",
                                               controllers="cpuset") + lines)
    assert tree.quota() == 3.0


def test_v1_only_a_cpu_controller_line_counts(tree, tmp_path):
    # The hierarchy holds a quota, but /proc/self/cgroup puts the process in no cpu hierarchy.
    tree.v1("/", {"": ("50000", "100000")}, "v1cpu")
    tree.proc.write_text("3:cpuset:/\n2:cpuacct:/\n1:name=systemd:/\n")
    assert tree.quota() is None


def test_hybrid_v1_and_v2_smallest_wins(tree, tmp_path, two_cpus):
    tree.v1("/grp", {"grp": ("150000", "100000")}, "v1cpu")
    _write(tree.root / "cpu.max", "350000 100000")
    tree.proc.write_text("4:cpu,cpuacct:/grp\n0::/\n")
    # The v2 hierarchy is at root (mountinfo lists no cgroup2 mount).
    assert tree.quota() == 1.5
    assert tree.threads() == (1, "cgroup v1 quota 1.5 CPUs (cpu.cfs_quota_us), affinity 2 CPUs")
    _write(tree.root / "cpu.max", "50000 100000")
    assert tree.quota() == 0.5
    assert tree.threads() == (1, "cgroup v2 quota 0.5 CPUs (cpu.max), affinity 2 CPUs")


# --- defensive reading -------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    "", "\n", "garbage", "150000", "150000 100000 7", "abc 100000", "150000 abc", "1.5 1",
    "0 100000", "-5 100000", "-1 100000", "max", "max max", "150000 0", "150000 -100000",
    "150000 2000000",                    # a period above the kernel's 1 s
    "9" * 30 + " 100000",                # more digits than an int64 holds
    "200000000000000000 100000",         # 2e12 CPUs: no real quota
    "\x00\xff 100000", "１５００００ １０００００",     # NUL and non-ASCII (full-width) digits
])
def test_v2_garbage_is_no_quota(tree, content):
    tree.v2("/a", {"a": content})
    assert tree.quota() is None


def test_v2_garbage_at_one_level_leaves_the_others(tree):
    tree.v2("/a/b", {"a/b": "garbage", "a": "80000 100000"})
    assert tree.quota() == 0.8


def test_v2_binary_file_is_no_quota(tree):
    tree.v2("/a", {})
    (tree.root / "a").mkdir()
    (tree.root / "a" / "cpu.max").write_bytes(b"\xff\xfe\x00\x80 \x01")
    assert tree.quota() is None


@pytest.mark.parametrize("quota, period", [
    ("abc", "100000"), ("50000", "abc"), ("50000", "0"), ("50000", "-100000"), ("0", "100000"),
    ("-5", "100000"), ("", "100000"), ("50000 1", "100000"), ("50000", None), (None, "100000"),
    ("9" * 19, "100000"), ("50000", "10000000"),
])
def test_v1_garbage_and_missing_files_are_no_quota(tree, quota, period):
    tree.v1("/", {"": (quota, period)}, "v1cpu")
    assert tree.quota() is None


def test_missing_proc_self_cgroup_is_no_quota(tree):
    _write(tree.root / "cpu.max", "50000 100000")    # a quota nobody says the process is under
    assert not tree.proc.exists()
    assert tree.quota() is None


def test_missing_cgroup_tree_is_no_quota(tmp_path):
    _write(tmp_path / "proc_cgroup", "4:cpu,cpuacct:/grp\n0::/a/b\n")
    assert Q.cgroup_quota(root=str(tmp_path / "nope"),
                          proc_self_cgroup=str(tmp_path / "proc_cgroup"),
                          mountinfo=str(tmp_path / "no-mountinfo")) is None


@pytest.mark.parametrize("proc", ["", "garbage\n", "0::relative\n", "::::\n", "\x00\x01\x02",
                                  "0:cpu:\n"])
def test_garbage_proc_self_cgroup_is_no_quota(tree, proc):
    _write(tree.root / "cpu.max", "50000 100000")
    _write(tree.proc, proc)
    assert tree.quota() is None


@pytest.mark.parametrize("mountinfo", ["", "garbage\n", "1 2 3\n", "- - - - - - -\n",
                                       "35 25 0:30 / /x rw - cgroup2\n"])
def test_garbage_mountinfo_never_raises(tree, mountinfo):
    # A garbage mountinfo lists no usable mount for v1; the last line names a nonexistent v2
    # mount point, so there is nothing to read either way.
    tree.v1("/", {"": ("50000", "100000")}, "v1cpu")
    _write(tree.mountinfo, mountinfo)
    assert tree.quota() is None


def test_directories_and_bad_paths_never_raise(tree):
    assert Q.cgroup_quota(root=str(tree.root), proc_self_cgroup=str(tree.tmp),
                          mountinfo=str(tree.tmp)) is None
    assert Q.cgroup_quota(root="bad\0root", proc_self_cgroup="bad\0proc",
                          mountinfo="bad\0mountinfo") is None
    tree.v2("/a", {"a": "50000 100000"})
    assert Q.cgroup_quota(root="bad\0root", proc_self_cgroup=str(tree.proc),
                          mountinfo=str(tree.mountinfo)) is None


def test_mountinfo_octal_escapes_are_undone(tree, tmp_path):
    point = tmp_path / "with space"
    _write(point / "cpu.max", "60000 100000")
    _write(tree.proc, "0::/\n")
    _write(tree.mountinfo, V2_LINE.format(root="/", point=str(point).replace(" ", "\\040")))
    assert tree.quota() == 0.6


def test_path_with_dotdot_reads_only_the_mount_point(tree, tmp_path):
    _write(tmp_path / "outside" / "cpu.max", "10000 100000")
    tree.v2("/../outside", {"": "max 100000"})
    assert tree.quota() is None


# --- default_threads ---------------------------------------------------------------------------

def test_default_threads_without_a_quota_is_the_affinity_mask(tree, two_cpus):
    tree.v2("/a", {"a": "max 100000"})
    assert tree.threads() == (2, "affinity mask: 2 CPUs")


@pytest.mark.parametrize("cpu_max, expected", [
    ("150000 100000", (1, "cgroup v2 quota 1.5 CPUs (cpu.max), affinity 2 CPUs")),
    ("50000 100000", (1, "cgroup v2 quota 0.5 CPUs (cpu.max), affinity 2 CPUs")),
    ("1000 100000", (1, "cgroup v2 quota 0.01 CPUs (cpu.max), affinity 2 CPUs")),
    ("100000 100000", (1, "cgroup v2 quota 1 CPU (cpu.max), affinity 2 CPUs")),
    ("200000 100000", (2, "cgroup v2 quota 2 CPUs (cpu.max), affinity 2 CPUs")),
    ("400000 100000", (2, "cgroup v2 quota 4 CPUs (cpu.max), affinity 2 CPUs")),
    ("100000 300000", (1, "cgroup v2 quota 0.333 CPUs (cpu.max), affinity 2 CPUs")),
])
def test_default_threads_rounds_the_quota_down_within_the_affinity_mask(tree, two_cpus, cpu_max,
                                                                       expected):
    tree.v2("/", {"": cpu_max})
    assert tree.threads() == expected


def test_default_threads_with_a_wide_mask(tree, monkeypatch):
    monkeypatch.setattr(Q, "affinity_cpus", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    tree.v1("/", {"": ("390000", "100000")}, "v1cpu")
    assert tree.threads() == (3, "cgroup v1 quota 3.9 CPUs (cpu.cfs_quota_us), affinity 16 CPUs")


def test_default_threads_one_cpu_mask(tree, monkeypatch):
    monkeypatch.setattr(Q, "affinity_cpus", lambda: 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert tree.threads() == (1, "affinity mask: 1 CPU")


@pytest.mark.parametrize("value, expected", [
    ("3", (3, "OMP_NUM_THREADS=3")),
    ("4,2", (4, "OMP_NUM_THREADS=4,2")),
    (" 5 ", (5, "OMP_NUM_THREADS= 5 ")),
    ("+6", (6, "OMP_NUM_THREADS=+6")),
    ("64", (64, "OMP_NUM_THREADS=64")),
    ("0", (1, "OMP_NUM_THREADS=0 (raised to 1)")),
    ("-2", (1, "OMP_NUM_THREADS=-2 (raised to 1)")),
])
def test_omp_num_threads_overrides_the_quota(tree, two_cpus, monkeypatch, value, expected):
    tree.v2("/", {"": "50000 100000"})
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert tree.threads() == expected


@pytest.mark.parametrize("value", ["abc", "x,4", "2.5", "4abc", ",4", "9" * 19, "٣"])
def test_unparsable_omp_num_threads_falls_back_to_the_computed_default(tree, two_cpus,
                                                                       monkeypatch, value):
    tree.v2("/", {"": "150000 100000"})
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert tree.threads() == (1, "cgroup v2 quota 1.5 CPUs (cpu.max), affinity 2 CPUs "
                                 f"(OMP_NUM_THREADS={value!r} ignored: not a thread count)")


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_omp_num_threads_is_unset(tree, two_cpus, monkeypatch, value):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert tree.threads() == (2, "affinity mask: 2 CPUs")


# --- affinity and the real machine --------------------------------------------------------------

def test_affinity_cpus_is_the_affinity_mask():
    if hasattr(os, "sched_getaffinity"):
        assert Q.affinity_cpus() == len(os.sched_getaffinity(0))
    else:
        assert Q.affinity_cpus() == (os.cpu_count() or 1)


@pytest.mark.parametrize("count, expected", [(7, 7), (None, 1)])
def test_affinity_cpus_falls_back_to_cpu_count(monkeypatch, count, expected):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: count)
    assert Q.affinity_cpus() == expected


@pytest.mark.parametrize("failure", ["empty", "error"])
def test_affinity_cpus_falls_back_when_the_mask_is_unusable(monkeypatch, failure):
    def getaffinity(pid):
        if failure == "error":
            raise OSError("no affinity here")
        return set()
    monkeypatch.setattr(os, "sched_getaffinity", getaffinity, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert Q.affinity_cpus() == 5


def test_default_threads_on_this_machine(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n, source = Q.default_threads()
    assert 1 <= n <= Q.affinity_cpus()
    assert source.startswith(("affinity mask: ", "cgroup v1 quota ", "cgroup v2 quota "))
    quota = Q.cgroup_quota()
    assert quota is None or quota > 0


def test_the_module_imports_only_the_standard_library():
    # Loaded by file path in a fresh interpreter, so fastnn/__init__.py does not run first.
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('q', {Q.__file__!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "n, source = module.default_threads()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('fastnn', 'numpy'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
