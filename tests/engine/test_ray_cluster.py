"""Several Ray nodes on this machine (`ray.cluster_utils.Cluster`: one raylet per node): workers spread over
nodes, and a node that goes away takes only a restart of its workers, elsewhere."""

from __future__ import annotations

import pytest
import torch

from tests.engine.test_backends import assert_ray_processes_end, ray_processes
from tests.engine.test_runtime import start, tiny_config, wait_for

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    before = ray_processes()
    # The head takes no workers (0 CPUs): two 1-CPU nodes take one worker each, a third stays free for a restart.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(3)]
        cluster.wait_for_nodes()
        yield cluster, nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        assert_ray_processes_end(before)


def test_workers_spread_over_nodes_and_come_back_elsewhere_when_a_node_dies(tmp_path, runs, cluster):
    cluster, nodes = cluster
    run = start(runs, tiny_config(tmp_path, steps=0, backend="ray", ray_address=cluster.address))
    # Updates alone can all come from the worker that started first: wait until both send gradients.
    wait_for(lambda: all(row.grads_sent > 0 and row.node for row in run.worker_rows()), 180,
             "first gradients from both nodes")
    rows = run.worker_rows()
    assert rows[0].node and rows[1].node and rows[0].node != rows[1].node
    lost_node = rows[0].node
    node_of_worker_0 = next(n for n in nodes if n.node_id.startswith(lost_node.split()[-1]))
    cluster.remove_node(node_of_worker_0)
    wait_for(lambda: run.worker_rows()[0].restarts >= 1, 120, "worker 0 restarted")
    wait_for(lambda: run.worker_rows()[0].state == "running" and run.worker_rows()[0].grads_sent > 0, 180,
             "worker 0 running again, on another node")
    assert run.worker_rows()[0].node not in (lost_node, run.worker_rows()[1].node)
    before = run.coordinator.counters.updates
    wait_for(lambda: run.coordinator.counters.updates > before + 5, 120, "updates after the node left")
    assert run.worker_rows()[1].restarts == 0  # the other node's worker went on untouched
    assert run.coordinator.counters.dropped_nonfinite == 0
    assert torch.isfinite(run.coordinator.flat.weights).all()
    run.stop()
    assert run.error is None
