"""A seeded generator of four heterogeneous silos written in the real Loghub formats.

It is the demo and test default (``flwr run .`` works with no data at hand);
real data stays the measure. Every silo has variable fields (block ids, IPs,
pids, numbers) so that parsing has real work to do, and several kinds of
injected anomalies: missing, extra and out-of-order steps in HDFS-like block
workflows, error events and rare events in the RAS/syslog-like silos.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SYNTHETIC_SILOS = ("hdfs", "bgl", "thunderbird", "spirit")
_START = 1_226_262_930  # 2008-11-09 20:35:30 UTC, like the HDFS sample


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes of the generated silos; ``scale`` multiplies them all."""

    seed: int = 7
    scale: float = 1.0
    hdfs_blocks: int = 1200
    syslog_lines: int = 12000
    anomaly_rate: float = 0.04

    def n(self, base: int) -> int:
        return max(50, int(base * self.scale))


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


# -- HDFS-like block workflows ------------------------------------------------------------


def _hdfs_block_events(rng: random.Random, blk: str) -> list[tuple[str, str, str]]:
    """(level, component, message) steps of one normal block life cycle."""
    nodes = [_ip(rng) for _ in range(3)]
    size = rng.randint(1_000_000, 67_108_864)
    path = f"/user/root/rand/_temporary/_task_{rng.randint(10**11, 10**12)}_m_{rng.randint(0, 999):06d}_0/part-{rng.randint(0, 999):05d}"
    steps = [("INFO", "dfs.FSNamesystem", f"BLOCK* NameSystem.allocateBlock: {path}. {blk}")]
    for n in nodes:
        steps.append(
            (
                "INFO",
                "dfs.DataNode$DataXceiver",
                f"Receiving block {blk} src: /{n}:{rng.randint(30000, 60000)} dest: /{n}:50010",
            )
        )
    for i in range(2, -1, -1):
        steps.append(("INFO", "dfs.DataNode$PacketResponder", f"PacketResponder {i} for block {blk} terminating"))
    for n in nodes:
        steps.append(("INFO", "dfs.DataNode$PacketResponder", f"Received block {blk} of size {size} from /{n}"))
    for n in nodes:
        steps.append(
            (
                "INFO",
                "dfs.FSNamesystem",
                f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {n}:50010 is added to {blk} size {size}",
            )
        )
    if rng.random() < 0.3:
        steps.append(("INFO", "dfs.DataBlockScanner", f"Verification succeeded for {blk}"))
    if rng.random() < 0.5:
        steps.append(
            (
                "INFO",
                "dfs.FSDataset",
                f"Deleting block {blk} file /mnt/hadoop/dfs/data/current/subdir{rng.randint(0, 63)}/{blk}",
            )
        )
    return steps


def _hdfs_anomaly(rng: random.Random, blk: str, steps: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    kind = rng.choice(["missing", "extra", "order", "error", "rare"])
    steps = list(steps)
    if kind == "missing":  # a replica never reports back
        drop = [i for i, s in enumerate(steps) if "Received block" in s[2] or "addStoredBlock" in s[2]]
        for i in sorted(rng.sample(drop, k=min(len(drop), rng.randint(2, 4))), reverse=True):
            del steps[i]
    elif kind == "extra":  # the block is replicated again and again
        extra = [s for s in steps if "Receiving block" in s[2]]
        steps[4:4] = extra * rng.randint(2, 3)
    elif kind == "order":  # storage confirmed before the data arrived
        first, last = steps[1:4], steps[4:]
        steps = [steps[0]] + last[::-1] + first
    elif kind == "error":
        steps.insert(
            rng.randint(2, len(steps)),
            (
                "WARN",
                "dfs.DataNode$DataXceiver",
                f"{_ip(rng)}:50010:Got exception while serving {blk} to /{_ip(rng)}:",
            ),
        )
        steps.insert(
            rng.randint(2, len(steps)),
            (
                "INFO",
                "dfs.DataNode$DataXceiver",
                f"writeBlock {blk} received exception java.io.IOException: Connection reset by peer",
            ),
        )
    else:
        steps.append(
            (
                "INFO",
                "dfs.FSNamesystem",
                f"BLOCK* NameSystem.addToInvalidates: {blk} is added to invalidSet of {_ip(rng)}:50010",
            )
        )
    return steps


def write_hdfs(directory: Path, spec: SyntheticSpec) -> None:
    rng = random.Random(spec.seed * 1000 + 1)
    events: list[tuple[float, int, str]] = []
    labels: list[tuple[str, str]] = []
    t = float(_START)
    for b in range(spec.n(spec.hdfs_blocks)):
        blk = f"blk_{rng.choice(['', '-'])}{rng.randint(10**17, 10**19 - 1)}"
        steps = _hdfs_block_events(rng, blk)
        anomalous = rng.random() < spec.anomaly_rate
        if anomalous:
            steps = _hdfs_anomaly(rng, blk, steps)
        labels.append((blk, "Anomaly" if anomalous else "Normal"))
        t += rng.expovariate(1 / 2.0)
        step_t = t
        for level, comp, msg in steps:
            step_t += rng.expovariate(1 / 1.5)
            events.append((step_t, b, f"{level} {comp}: {msg}"))
    events.sort(key=lambda e: e[0])
    with (directory / "HDFS.log").open("w") as out:
        for ts, _, text in events:
            tm = time.gmtime(ts)
            out.write(f"{time.strftime('%y%m%d %H%M%S', tm)} {rng.randint(10, 999)} {text}\n")
    with (directory / "anomaly_label.csv").open("w") as out:
        out.write("BlockId,Label\n")
        out.writelines(f"{blk},{lab}\n" for blk, lab in labels)


# -- label-first RAS / syslog silos -------------------------------------------------------

Msg = Callable[[random.Random], str]


@dataclass(frozen=True)
class _SyslogSilo:
    """A label-first silo: normal event mix, rare-but-normal events, anomaly bursts."""

    normal: list[Msg]
    rare: list[Msg]
    anomalies: list[tuple[str, Msg]]  # (label token, message)
    line: Callable[[random.Random, int, str, str], str]  # (rng, epoch, label, message)


def _bgl_line(rng: random.Random, ts: int, label: str, msg: str) -> str:
    node = f"R{rng.randint(0, 77):02d}-M{rng.randint(0, 1)}-N{rng.randint(0, 15)}-C:J{rng.randint(2, 17):02d}-U{rng.randint(0, 1)}1"
    tm = time.gmtime(ts)
    stamp = time.strftime("%Y-%m-%d-%H.%M.%S", tm) + f".{rng.randint(0, 999999):06d}"
    return f"{label} {ts} {time.strftime('%Y.%m.%d', tm)} {node} {stamp} {node} RAS {msg}"


def _syslog_line(prefix: str) -> Callable[[random.Random, int, str, str], str]:
    def line(rng: random.Random, ts: int, label: str, msg: str) -> str:
        node = f"{prefix}{rng.randint(1, 400)}"
        tm = time.gmtime(ts)
        day = f"{time.strftime('%b', tm)} {tm.tm_mday}"
        return f"{label} {ts} {time.strftime('%Y.%m.%d', tm)} {node} {day} {time.strftime('%H:%M:%S', tm)} {node}/{node} {msg}"

    return line


BGL = _SyslogSilo(
    normal=[
        lambda r: "KERNEL INFO instruction cache parity error corrected",
        lambda r: f"KERNEL INFO generating core.{r.randint(100, 20000)}",
        lambda r: (
            f"KERNEL INFO {r.randint(1, 9)} ddr error(s) detected and corrected on rank 0, symbol {r.randint(0, 35)}, bit {r.randint(0, 7)}"
        ),
        lambda r: (
            f"APP INFO ciod: generated {r.randint(1, 128)} core files for program /bgl/apps/run{r.randint(1, 50)}"
        ),
        lambda r: f"KERNEL INFO CE sym {r.randint(0, 35)}, at 0x{r.getrandbits(32):08x}, mask 0x{r.getrandbits(8):02x}",
    ],
    rare=[lambda r: "MMCS INFO idoproxydb hit ASSERT condition: ASSERT expression=0"],
    anomalies=[
        ("KERNDTLB", lambda r: f"KERNEL FATAL data TLB error interrupt at 0x{r.getrandbits(32):08x}"),
        ("KERNSTOR", lambda r: "KERNEL FATAL data storage interrupt"),
        ("KERNMNTF", lambda r: f"KERNEL FATAL Lustre mount FAILED : bglio{r.randint(1, 300)} : point /p/gb1"),
        (
            "APPSEV",
            lambda r: (
                f"APP FATAL ciod: Error reading message prefix after LOAD_MESSAGE on CioStream socket to 172.16.96.{r.randint(1, 254)}:{r.randint(30000, 60000)}"
            ),
        ),
    ],
    line=_bgl_line,
)

THUNDERBIRD = _SyslogSilo(
    normal=[
        lambda r: (
            f"sshd[{r.randint(1000, 32000)}]: Accepted publickey for root from ::ffff:{_ip(r)} port {r.randint(30000, 60000)} ssh2"
        ),
        lambda r: f"crond(pam_unix)[{r.randint(1000, 32000)}]: session opened for user root by (uid=0)",
        lambda r: f"crond(pam_unix)[{r.randint(1000, 32000)}]: session closed for user root",
        lambda r: f"crond[{r.randint(1000, 32000)}]: (root) CMD (run-parts /etc/cron.hourly)",
        lambda r: f"ntpd[{r.randint(1000, 9000)}]: synchronized to {_ip(r)}, stratum {r.randint(1, 4)}",
    ],
    rare=[
        lambda r: (
            f"Server Administrator: Instrumentation Service EventID: 1052 Temperature sensor returned to a normal value {r.randint(10, 40)}.0"
        )
    ],
    anomalies=[
        (
            "VAPI",
            lambda r: (
                f"kernel: [KERNEL_IB][tsIbTavorMadProcess][tavor_mad.c:152]InfiniHost0: EVAPI_process_local_mad failed, return code = -{r.randint(200, 260)} (Fatal error (Local Catastrophic Error))"
            ),
        ),
        ("CPU", lambda r: f"kernel: CPU{r.randint(0, 3)}: Temperature above threshold, cpu clock throttled"),
    ],
    line=_syslog_line("dn"),
)

SPIRIT = _SyslogSilo(
    normal=[
        lambda r: f"sshd[{r.randint(1000, 32000)}]: Connection from {_ip(r)} port {r.randint(30000, 60000)}",
        lambda r: f"pbs_mom: Job {r.randint(10000, 99999)}.sadmin2 started, pid = {r.randint(1000, 32000)}",
        lambda r: f"pbs_mom: Job {r.randint(10000, 99999)}.sadmin2 exited with status 0",
        lambda r: f"kernel: eth0: link up, 1000Mbps, full-duplex, lpa 0x{r.getrandbits(16):04X}",
    ],
    rare=[lambda r: "syslogd 1.4.1: restart (remote reception)."],
    anomalies=[
        ("DSKNR", lambda r: f"kernel: hd{r.choice('ab')}: drive not ready for command"),
        (
            "DSKST",
            lambda r: (
                f"kernel: hd{r.choice('ab')}: status error: status=0x{r.getrandbits(8):02x} {{ DriveReady SeekComplete Error }}"
            ),
        ),
        (
            "DHCP",
            lambda r: (
                f"dhcpd: DHCPDISCOVER from 00:11:43:{r.getrandbits(8):02x}:{r.getrandbits(8):02x}:{r.getrandbits(8):02x} via eth1: network 10.0.0.0/16: no free leases"
            ),
        ),
    ],
    line=_syslog_line("sn"),
)


def write_syslog(directory: Path, name: str, silo: _SyslogSilo, spec: SyntheticSpec, seed: int) -> None:
    """Normal traffic with rare events; anomalies come as short bursts of error events."""
    rng = random.Random(spec.seed * 1000 + seed)
    ts = _START
    n_lines = spec.n(spec.syslog_lines)
    burst_left, burst = 0, silo.anomalies[0]
    with (directory / f"{name}.log").open("w") as out:
        for _ in range(n_lines):
            ts += rng.choice((0, 0, 1, 1, 2))
            if burst_left == 0 and rng.random() < spec.anomaly_rate / 8:
                burst_left, burst = rng.randint(1, 6), rng.choice(silo.anomalies)
            if burst_left > 0 and rng.random() < 0.6:
                burst_left -= 1
                label, msg = burst[0], burst[1](rng)
            elif rng.random() < 0.004:
                label, msg = "-", rng.choice(silo.rare)(rng)
            else:
                label, msg = "-", rng.choice(silo.normal)(rng)
            out.write(silo.line(rng, ts, label, msg) + "\n")


def generate_silos(root: Path, spec: SyntheticSpec = SyntheticSpec()) -> dict[str, Path]:
    """Write the four silos under ``root`` once and return format -> path.

    Several clients may ask at once (simulation): each writes a private copy
    and the first atomic rename wins, so nobody reads a half-written file.
    """
    root = Path(root)
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
        for name in SYNTHETIC_SILOS:
            (tmp / name).mkdir()
        write_hdfs(tmp / "hdfs", spec)
        write_syslog(tmp / "bgl", "BGL", BGL, spec, seed=2)
        write_syslog(tmp / "thunderbird", "Thunderbird", THUNDERBIRD, spec, seed=3)
        write_syslog(tmp / "spirit", "Spirit", SPIRIT, spec, seed=4)
        try:
            tmp.rename(root)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return {name: root / name for name in SYNTHETIC_SILOS}
