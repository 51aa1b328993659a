import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance and TransferQueue, as veRL's v1 trainer runs on, with the setup hook the
    veRL engine's launches of turn-credit stages name."""
    tq = pytest.importorskip("transfer_queue", reason="veRL's v1 trainer needs TransferQueue: pip install -e '.[verl]'")
    import ray
    from omegaconf import OmegaConf

    from envtune.verl.credit import SETUP_HOOK

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": SETUP_HOOK})
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        yield
        tq.close()
    finally:
        ray.shutdown()
