"""Apache Kafka 4 (KRaft, one broker+controller per region) and MirrorMaker 2, from Maven jars."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack import paths, versions
from checkout_stack.errors import MissingTool, StackError
from checkout_stack.proc import Proc, free_port, run, tcp_open

COMPONENT = "kafka"
FIX_BUILD = "run `hack/stack build` (fetches the Kafka jars) or `bash hack/setup.sh`"
JVM_OPTS = [
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    # C1 only: a test broker never gets hot enough to repay C2's compile CPU (measured: an idle
    # broker 2.4 % of a core instead of 6.9 % with the idle settings below, start-up CPU halved)
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Dlog4j2.formatMsgNoLookups=true",
]
LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
"""


def classpath() -> str:
    libs = paths.kafka_libs()
    if not (libs / f"kafka_2.13-{versions.KAFKA}.jar").exists():
        raise MissingTool(COMPONENT, f"Kafka {versions.KAFKA} jars in {libs}", FIX_BUILD)
    return f"{libs}/*"


def cds_archive() -> Path:
    """AppCDS archive of the broker's classes (made by `hack/stack build`): halves JVM start CPU."""
    return paths.kafka_libs().parent / "kafka-cds.jsa"


def _java(
    main: str,
    *args: str,
    log4j: Path,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """The java command line; ``env`` is a pod's environment: its ``KAFKA_HEAP_OPTS`` and
    ``KAFKA_JVM_PERFORMANCE_OPTS`` replace the defaults here, as Kafka's scripts do with them."""
    cds = cds_archive()
    share = [f"-XX:SharedArchiveFile={cds}"] if cds.exists() and not extra else []
    opts = list(JVM_OPTS)
    heap = (env or {}).get("KAFKA_HEAP_OPTS")
    if heap:
        opts = [o for o in opts if not o.startswith(("-Xms", "-Xmx"))] + heap.split()
    perf = (env or {}).get("KAFKA_JVM_PERFORMANCE_OPTS")
    if perf:
        opts = [o for o in opts if not o.startswith("-XX:")] + perf.split()
    return [
        str(paths.java_bin()),
        *opts,
        *share,
        *extra,
        *os.environ.get("CHECKOUT_STACK_JVM_OPTS", "").split(),
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath(),
        main,
        *args,
    ]


@dataclass
class KafkaCluster:
    """A single-node KRaft cluster (broker + controller in one JVM) for one region."""

    region: str
    dir: Path
    port: int = 0
    controller_port: int = 0
    cluster_id: str = ""
    jvm_opts: Sequence[str] = ()
    nice: int = 0
    """Run the broker under ``nice -n`` (see :class:`Proc`)."""
    auto_create_topics: bool = True
    """``auto.create.topics.enable``: False makes a producer to a missing topic fail, as on a
    production cluster, so tests show that the services create their topics themselves."""
    pod_address: str = ""
    """Set: a second listener (``PODS``) for clients in a real node's pods, bound on loopback at
    ``pod_port`` (the node forwards it) and advertised as ``pod_address:pod_port``, where the
    pods reach it; the loopback listener keeps advertising ``127.0.0.1``."""
    pod_port: int = 0
    procs: list[Proc] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pod_bootstrap(self) -> str:
        return f"{self.pod_address}:{self.pod_port}"

    @property
    def log(self) -> Path:
        return self.dir / "kafka.log"

    def _configure(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        advertised = list(listeners)
        if self.pod_address:
            self.pod_port = self.pod_port or free_port()
            listeners.append(f"PODS://127.0.0.1:{self.pod_port}")
            advertised.append(f"PODS://{self.pod_bootstrap}")
        props = self.dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners={','.join(listeners)},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners={','.join(advertised)}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map="
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PODS:PLAINTEXT",
                    f"log.dirs={self.dir / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=5",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "min.insync.replicas=1",
                    "group.initial.rebalance.delay.ms=0",
                    f"auto.create.topics.enable={str(self.auto_create_topics).lower()}",
                    "log.flush.interval.messages=9223372036854775807",
                    # Idle cost (issue: what a region costs). The active controller appends a
                    # no-op record to the metadata log every 500 ms by default, so an idle
                    # single-node cluster writes twice a second; one broker needs few threads.
                    "metadata.max.idle.interval.ms=5000",
                    "num.network.threads=1",
                    "num.io.threads=2",
                    "background.threads=2",
                    "num.recovery.threads.per.data.dir=1",
                    "",
                ]
            )
        )
        (self.dir / "log4j2.properties").write_text(LOG4J2.format(level="WARN"))
        return props

    def start(self) -> KafkaCluster:
        """Start (or restart after `stop()`, keeping data and ports)."""
        props = self.dir / "server.properties"
        if not props.exists():
            props = self._configure()
            self.cluster_id = self.cluster_id or kafka_id()
            self._format()
        proc = Proc(
            f"{COMPONENT}[{self.region}]",
            _java(
                "kafka.Kafka",
                str(props),
                log4j=self.dir / "log4j2.properties",
                extra=self.jvm_opts,
            ),
            log=self.log,
            nice=self.nice,
            fix=(
                "read the log above; if it names a corrupt or missing jar, "
                f"`rm -rf {paths.kafka_libs()}` and run `hack/stack build` (refetches them)"
            ),
        )
        marker = f"-- start {len(self.procs)}"
        with self.log.open("a") as out:
            out.write(f"{marker}\n")
        proc.start()
        self.procs.append(proc)

        def ready() -> bool:
            text = self.log.read_text(errors="replace").split(marker, 1)[-1]
            return "Kafka Server started" in text and tcp_open(self.port)

        proc.wait_ready(ready, timeout=90, what="started")
        return self

    def _format(self) -> None:
        """What `kafka-storage format` does for a static-quorum node: meta.properties plus the
        bootstrap checkpoint (feature levels only), copied from a template formatted once."""
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bootstrap_template(), data / "bootstrap.checkpoint")
        (data / "meta.properties").write_text(
            f"node.id=1\ndirectory.id={kafka_id()}\nversion=1\ncluster.id={self.cluster_id}\n"
        )

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs:
            proc.stop(timeout=timeout)

    def alive(self) -> bool:
        return any(p.alive() for p in self.procs)


def kafka_id() -> str:
    """A Kafka cluster/directory id: 16 random bytes, URL-safe base64 without padding, never
    starting with `-` (a command line reads such an id as an option: one id in 64 would).
    Kafka's own `Uuid.randomUuid()` rejects those ids for the same reason."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


_template_lock = threading.Lock()


def bootstrap_template() -> Path:
    """`bootstrap.checkpoint` of a freshly formatted node (metadata.version of this Kafka),
    made once per Kafka version by the real StorageTool and cached next to the jars."""
    target = paths.kafka_libs().parent / "bootstrap.checkpoint"
    with _template_lock:
        if target.exists():
            return target
        work = Path(tempfile.mkdtemp(prefix="kafka-format-"))
        try:
            data = format_storage(work, kafka_id())
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(data / "bootstrap.checkpoint", tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target


def format_storage(work: Path, cluster_id: str) -> Path:
    """`kafka-storage format` of a one-node static quorum in `work`; returns its data folder.
    The id goes as `--cluster-id=<id>`: even an id that starts with `-` is not read as an option."""
    props = work / "server.properties"
    props.write_text(
        "process.roles=broker,controller\nnode.id=1\n"
        "controller.quorum.voters=1@127.0.0.1:9093\n"
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"
        f"controller.listener.names=CONTROLLER\nlog.dirs={work / 'data'}\n"
    )
    (work / "log4j2.properties").write_text(LOG4J2.format(level="WARN"))
    run(
        COMPONENT,
        _java(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            f"--config={props}",
            log4j=work / "log4j2.properties",
        ),
        fix=FIX_BUILD,
    )
    return work / "data"


@dataclass
class MirrorMaker:
    """MirrorMaker 2 in dedicated mode: `org.apache.kafka.connect.mirror.MirrorMaker props`."""

    proc: Proc

    @property
    def log(self) -> Path:
        return self.proc.log

    def alive(self) -> bool:
        return self.proc.alive()

    def stop(self) -> None:
        self.proc.stop(timeout=20)


def run_mirrormaker(
    properties_path: Path,
    env: Mapping[str, str] | None,
    dir: Path,
    clusters: list[str] | None = None,
    nice: int = 0,
) -> MirrorMaker:
    dir.mkdir(parents=True, exist_ok=True)
    log4j = dir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(level="WARN"))
    args = [str(properties_path)]
    if clusters:
        args += ["--clusters", *clusters]
    log = dir / "mirrormaker.log"
    proc = Proc(
        "mirrormaker2",
        _java("org.apache.kafka.connect.mirror.MirrorMaker", *args, log4j=log4j, env=env),
        log=log,
        env=dict(env or {}),
        nice=nice,
        fix="check the properties file and that both Kafka clusters are up",
    ).start()
    # fail fast when it dies straight away (bad properties, missing jars)
    time.sleep(1.0)
    if not proc.alive():
        raise StackError("mirrormaker2", "exited right after start", fix=proc.fix, log=proc.log)
    return MirrorMaker(proc)


TOOLS = {"kafka-topics.sh": "org.apache.kafka.tools.TopicCommand"}
"""The Kafka image's CLI scripts (``/opt/kafka/bin/<script>``) by their main class."""


def run_tool(
    command: Sequence[str], env: Mapping[str, str], dir: Path, timeout: float = 120
) -> str:
    """Run a Kafka image's CLI command (``[/opt/kafka/bin/kafka-topics.sh, args...]``, as a
    container would) on the stack's jars, to completion; its output. A failure raises."""
    script = Path(command[0]).name
    if script not in TOOLS:
        raise StackError(COMPONENT, f"no main class known for {script}", fix=f"add it to {TOOLS}")
    dir.mkdir(parents=True, exist_ok=True)
    log4j = dir / "tool-log4j2.properties"
    log4j.write_text(LOG4J2.format(level="WARN"))
    done = run(
        COMPONENT,
        _java(TOOLS[script], *command[1:], log4j=log4j, env=env),
        fix="check the command and that the Kafka cluster is up",
        env=env,
        timeout=timeout,
    )
    return done.stdout


def mirrormaker_dir(base: Path) -> Path:
    return base / f"mm2-{uuid.uuid4().hex[:8]}"


def build_cds_archive() -> Path:
    """Run a broker once with -XX:ArchiveClassesAtExit and stop it: the JVM dumps the archive."""
    target = cds_archive()
    if target.exists():
        return target
    work = Path(tempfile.mkdtemp(prefix="kafka-cds-"))
    tmp = work / "kafka-cds.jsa"
    log = paths.logs_dir() / "build-kafka-cds.log"
    try:
        cluster = KafkaCluster("cds", work / "kafka", jvm_opts=[f"-XX:ArchiveClassesAtExit={tmp}"])
        cluster.start()
        # the JVM writes the archive while it exits: on a loaded machine that takes well over
        # the 20 s a broker gets to stop (a SIGKILL then leaves no archive)
        cluster.stop(timeout=180)
        if not tmp.exists():
            log.parent.mkdir(parents=True, exist_ok=True)
            if cluster.log.exists():
                shutil.copyfile(cluster.log, log)
            raise StackError(
                COMPONENT,
                "the JVM wrote no class-data archive",
                fix=(
                    f"read the log above; `rm -rf {paths.kafka_libs().parent}` and "
                    "run `hack/stack build` (refetches the jars, remakes the archive)"
                ),
                log=log,
            )
        shutil.move(tmp, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
