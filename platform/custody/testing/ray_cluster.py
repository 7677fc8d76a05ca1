"""A throwaway Ray cluster on loopback (a head node plus worker nodes), for tests and benchmarks.

Each node is a separate raylet process with its own CPUs, as on a real cluster; everything is
shut down when the block ends, whatever happened inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# On a small, busy machine the dashboard agent can take longer than Ray's 15 s default to start;
# the raylet would then abort. Wait longer (tests and benchmarks only; a real cluster is yours).
AGENT_WAIT_MS = 90_000


@contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[str]:
    """Start `nodes` Ray nodes with `cpus_per_node` CPUs each; yield the head's address."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": cpus_per_node,
            "include_dashboard": False,
            "object_store_memory": 200 << 20,
            "_system_config": {"agent_register_timeout_ms": AGENT_WAIT_MS},
        },
    )
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=200 << 20)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


@contextmanager
def joined_cluster(nodes: int, cpus_per_node: int, namespace: str) -> Iterator[str]:
    """`local_cluster`, with this process connected to it as a driver in `namespace` for the block."""
    import ray

    with local_cluster(nodes=nodes, cpus_per_node=cpus_per_node) as address:
        ray.init(address=address, namespace=namespace, log_to_driver=False)
        try:
            yield address
        finally:
            ray.shutdown()
