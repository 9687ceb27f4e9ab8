"""`embodia serve`: build the policy named by a :class:`ServeConfig` and serve it until a signal."""

from __future__ import annotations

import ipaddress
import logging
import os

from embodia.configs.serve import ServeConfig
from embodia.serving.protocol import API_KEY_ENV, HEALTH_PATH

log = logging.getLogger("embodia.serving")


def build_policy(cfg: ServeConfig):
    from embodia.policy import Policy
    from embodia.serving.demo import demo_policy

    if cfg.robot is not None and cfg.checkpoint is None:
        raise ValueError("--robot names one of a checkpoint's robots: it needs --checkpoint")
    if (cfg.checkpoint is None) == (cfg.preset is None):
        raise ValueError("give exactly one of --checkpoint DIR or --preset NAME (random weights)")
    if cfg.checkpoint is not None:  # a step, run or checkpoints/ directory, or checkpoints/latest
        return Policy.load(cfg.checkpoint, device=cfg.device, robot=cfg.robot)
    policy = demo_policy(cfg.preset, tuple(cfg.cameras))
    policy.model.to(cfg.device)
    log.warning("preset %r has random weights: actions are meaningless (demo only)", cfg.preset)
    return policy


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(cfg: ServeConfig) -> None:
    logging.basicConfig(
        level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if cfg.log_level != "debug":  # the library logs every connection at info; ours says more
        logging.getLogger("embodia.serving.websockets").setLevel(logging.WARNING)
    if cfg.max_message_mb <= 0:
        raise ValueError(f"--max-message-mb must be positive, got {cfg.max_message_mb}")
    api_key = cfg.api_key or os.environ.get(API_KEY_ENV) or None
    if not _is_loopback(cfg.host) and api_key is None:
        log.warning("listening on %s without an API key: anyone who can reach it can", cfg.host)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    from embodia.serving.server import PolicyServer

    server = PolicyServer(
        build_policy(cfg),
        host=cfg.host,
        port=cfg.port,
        api_key=api_key,
        max_message_bytes=int(cfg.max_message_mb * (1 << 20)),
    )

    def ready(port: int) -> None:
        m = server.metadata
        print(
            f"embodia serve: {m['model']} ({m['embodiment']}, cameras {m['cameras']}, "
            f"actions {m['action_shape']}) on ws://{cfg.host}:{port}  "
            f"health: http://{cfg.host}:{port}{HEALTH_PATH}",
            flush=True,
        )

    server.serve_forever(on_ready=ready)
