"""``litserve kubernetes``: manifests that run a server well on Kubernetes and scale it on its own load.

Written to ``--out`` (default ``k8s/`` next to the script), for ``kubectl apply -f k8s/``:

- ``namespace.yaml``: the namespace, enforcing the "restricted" Pod Security Standard the pods meet.
- ``deployment.yaml``: probes on the server's own paths, a grace period longer than its ``shutdown_timeout``,
  resources, a non-root read-only container, Prometheus scrape annotations.
- ``service.yaml``, ``pdb.yaml``, ``networkpolicy.yaml``.
- ``hpa.yaml``: ``autoscaling/v2`` on ``litserve_requests_in_flight_per_worker`` (a per-pod custom metric), or
  for an LLM server (``LLMAPI``) on ``litserve_llm_requests_waiting``: continuous batching takes in all it
  can hold, so requests waiting are what says a pod is full.
- ``autoscaling/prometheus-adapter-rules.yaml``: the Prometheus Adapter rule that serves that metric to the HPA.
- ``autoscaling/keda-scaledobject.yaml``: the same policy with KEDA instead (use it *instead of* ``hpa.yaml``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from litserve import __version__
from litserve.app import LIVENESS_PATH
from litserve.deploy.docker import APP_UID, container_command, shown_path
from litserve.deploy.script import ServerScript, read_server_script

AUTOSCALING_METRIC = "litserve_requests_in_flight_per_worker"
LLM_AUTOSCALING_METRIC = "litserve_llm_requests_waiting"
LLM_DEFAULT_TARGET = 2.0  # requests waiting per pod: a short queue, about to be admitted
PRE_STOP_SLEEP_S = 10  # time for the endpoint removal to reach every kube-proxy and ingress before SIGTERM
GRACE_MARGIN_S = 15  # beyond preStop + shutdown_timeout: answering the last requests and exiting
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def kubernetes(
    server_filename: str,
    *,
    name: str,
    image: str,
    port: Optional[int] = None,
    replicas: int = 1,
    gpus: int = 0,
    min_replicas: Optional[int] = None,
    max_replicas: Optional[int] = None,
    out: Optional[str] = None,
    namespace: Optional[str] = None,
    cpu: str = "2",
    memory: str = "4Gi",
    target_per_worker: Optional[float] = None,
    startup_seconds: int = 600,
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090",
) -> int:
    """Write Kubernetes manifests for a server script: Deployment, Service, PodDisruptionBudget, autoscaler.

    The HorizontalPodAutoscaler scales on litserve_requests_in_flight_per_worker (requests waiting or
    running per worker) from /metrics, served to it by the Prometheus Adapter rule written beside it. An LLM
    server (LLMAPI) scales on litserve_llm_requests_waiting instead (requests not yet generating, per pod).

    Args:
        server_filename: the server script (e.g. server.py) the image runs.
        name: name of the Deployment, Service and the rest (a DNS label, e.g. my-model).
        image: container image, e.g. registry.example.com/my-model:1.0 (built with `litserve dockerize`).
        port: port the server listens on (default: the one server.py uses, else 8000).
        replicas: pods to run; the autoscaler's minimum unless --min-replicas says otherwise.
        gpus: NVIDIA GPUs per pod (nvidia.com/gpu).
        min_replicas: fewest pods the autoscaler keeps (default: --replicas).
        max_replicas: most pods the autoscaler starts (default: 4 x the minimum).
        out: folder for the manifests (default: k8s/ next to the script).
        namespace: namespace of every object (default: --name).
        cpu: CPU cores per pod, requested and limit (e.g. "2", "500m").
        memory: memory per pod, requested and limit (e.g. "4Gi").
        target_per_worker: requests waiting or running per worker the autoscaler aims at (default:
            max_batch_size); for an LLM server, requests waiting per pod (default: 2).
        startup_seconds: how long a pod may take to load its model before it is restarted.
        prometheus_url: Prometheus that KEDA's alternative ScaledObject queries.
    """
    script_path = Path(server_filename)
    script = read_server_script(script_path)
    plan = Plan(
        script=script,
        name=name,
        image=image,
        port=script.resolve_port(port),
        replicas=replicas,
        gpus=gpus,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        namespace=namespace,
        cpu=cpu,
        memory=memory,
        target_per_worker=target_per_worker,
        startup_seconds=startup_seconds,
        prometheus_url=prometheus_url,
    )
    folder = Path(out) if out is not None else script_path.resolve().parent / "k8s"
    written = write_manifests(plan, folder)
    for path in written:
        print(f"Wrote {shown_path(path)}")
    rules = shown_path(folder / "autoscaling" / "prometheus-adapter-rules.yaml")
    print(f"\nApply (the autoscaler needs Prometheus scraping the pods, and the adapter rule in {rules}):\n")
    print(f"  kubectl apply -f {shown_path(folder)}")
    print(f"  kubectl -n {plan.namespace} rollout status deployment/{name}")
    print(f"  kubectl -n {plan.namespace} port-forward service/{name} {plan.port}:{plan.port}")
    return 0


class Plan:
    """The checked options the manifests are made from."""

    # No defaults here: the ``kubernetes`` command's signature is their one source (and its documentation).
    def __init__(
        self,
        script: ServerScript,
        *,
        name: str,
        image: str,
        port: int,
        replicas: int,
        gpus: int,
        min_replicas: Optional[int],
        max_replicas: Optional[int],
        namespace: Optional[str],
        cpu: str,
        memory: str,
        target_per_worker: Optional[float],
        startup_seconds: int,
        prometheus_url: str,
    ) -> None:
        _check_name(name, "--name")
        if namespace is not None:
            _check_name(namespace, "--namespace")
        if not image or any(ch.isspace() for ch in image) or image.endswith(":latest"):
            raise ValueError(f"--image must name a tagged image such as repo/{name}:1.0 (not :latest), got {image!r}")
        for value, flag in ((replicas, "--replicas"), (min_replicas, "--min-replicas")):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
        if gpus < 0:
            raise ValueError(f"--gpus must be 0 or more, got {gpus}")
        if startup_seconds < 10:
            raise ValueError(f"--startup-seconds must be at least 10, got {startup_seconds}")
        if script.metrics_path is None:
            raise ValueError(f"{script.path.name} turns metrics off (metrics_path=None): the autoscaler needs them")
        self.script = script
        self.name = name
        self.image = image
        self.port = port
        self.gpus = gpus
        self.namespace = namespace or name
        self.cpu = cpu
        self.memory = memory
        self.min_replicas = min_replicas if min_replicas is not None else replicas
        self.max_replicas = max_replicas if max_replicas is not None else 4 * self.min_replicas
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"--max-replicas ({self.max_replicas}) is below the minimum ({self.min_replicas})")
        default_target = LLM_DEFAULT_TARGET if script.llm else float(script.max_batch_size)
        target = target_per_worker if target_per_worker is not None else default_target
        if target <= 0:
            raise ValueError(f"--target-per-worker must be more than 0, got {target}")
        self.target = target
        self.startup_seconds = startup_seconds
        self.prometheus_url = prometheus_url

    @property
    def metric(self) -> str:
        """The per-pod metric the autoscaler reads."""
        return LLM_AUTOSCALING_METRIC if self.script.llm else AUTOSCALING_METRIC

    @property
    def labels(self) -> Dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": "model-server"}

    @property
    def grace_period_s(self) -> int:
        return PRE_STOP_SLEEP_S + math.ceil(self.script.shutdown_timeout) + GRACE_MARGIN_S

    @property
    def image_pinned(self) -> bool:
        return bool(_DIGEST.search(self.image))


def write_manifests(plan: Plan, folder: Path) -> List[Path]:
    """Write every manifest of ``plan`` under ``folder``; returns the paths written."""
    import yaml

    files = {
        "namespace.yaml": (_NAMESPACE_NOTE, namespace_manifest(plan)),
        "deployment.yaml": (_DEPLOYMENT_NOTE.format(grace=plan.grace_period_s), deployment_manifest(plan)),
        "service.yaml": (_SERVICE_NOTE, service_manifest(plan)),
        "pdb.yaml": (_PDB_NOTE, pdb_manifest(plan)),
        "networkpolicy.yaml": (_NETWORK_NOTE, network_policy_manifest(plan)),
        "hpa.yaml": (_LLM_HPA_NOTE if plan.script.llm else _HPA_NOTE, hpa_manifest(plan)),
        "autoscaling/prometheus-adapter-rules.yaml": (
            _ADAPTER_NOTE.format(metric=plan.metric),
            prometheus_adapter_rules(plan.metric),
        ),
        "autoscaling/keda-scaledobject.yaml": (_KEDA_NOTE, keda_scaled_object(plan)),
    }
    written = []
    for relative, (note, document) in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# Generated by `litserve kubernetes` (litserve {__version__}).\n" + _comment(note)
        path.write_text(header + yaml.safe_dump(document, sort_keys=False, width=120))
        written.append(path)
    return written


# --- manifests -------------------------------------------------------------------------------------


def namespace_manifest(plan: Plan) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": plan.namespace,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def deployment_manifest(plan: Plan) -> Dict[str, Any]:
    script = plan.script
    resources: Dict[str, Dict[str, Any]] = {
        "requests": {"cpu": plan.cpu, "memory": plan.memory},
        "limits": {"cpu": plan.cpu, "memory": plan.memory},
    }
    if plan.gpus:
        resources["requests"]["nvidia.com/gpu"] = plan.gpus
        resources["limits"]["nvidia.com/gpu"] = plan.gpus
    env = [{"name": script.port_env, "value": str(plan.port)}] if script.port_env else []
    env.append({"name": "TMPDIR", "value": "/tmp"})
    container: Dict[str, Any] = {
        "name": "server",
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent" if plan.image_pinned else "Always",
        "command": container_command(script),
        "ports": [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}],
        "env": env,
        "resources": resources,
        "startupProbe": _probe(script.healthcheck_path, period=5, timeout=3, failures=plan.startup_seconds // 5),
        "readinessProbe": _probe(script.healthcheck_path, period=5, timeout=3, failures=2),
        "livenessProbe": _probe(LIVENESS_PATH, period=10, timeout=5, failures=3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_S}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
    }
    pod_spec: Dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": plan.grace_period_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": APP_UID,
            "runAsGroup": APP_UID,
            "fsGroup": APP_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": plan.labels},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        ],
    }
    if plan.gpus:
        pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(plan.port),
        "prometheus.io/path": script.metrics_path,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(plan, annotations=_checkov_skips(plan)),
        "spec": {
            # No ``replicas``: the HorizontalPodAutoscaler owns the count (re-applying would reset it).
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": plan.labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": plan.labels, "annotations": annotations}, "spec": pod_spec},
        },
    }


def service_manifest(plan: Plan) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(plan),
        "spec": {
            "type": "ClusterIP",
            "selector": plan.labels,
            "ports": [
                {"name": "http", "port": plan.port, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
            ],
        },
    }


def pdb_manifest(plan: Plan) -> Dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(plan),
        "spec": {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": plan.labels},
        },
    }


def network_policy_manifest(plan: Plan) -> Dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(plan),
        "spec": {
            "podSelector": {"matchLabels": plan.labels},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": plan.port, "protocol": "TCP"}]}],
        },
    }


def hpa_manifest(plan: Plan) -> Dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(plan),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name},
            "minReplicas": plan.min_replicas,
            "maxReplicas": plan.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": plan.metric},
                        "target": {"type": "AverageValue", "averageValue": _quantity(plan.target)},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Percent", "value": 100, "periodSeconds": 30},
                        {"type": "Pods", "value": 4, "periodSeconds": 30},
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "selectPolicy": "Min",
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                },
            },
        },
    }


def prometheus_adapter_rules(metric: str = AUTOSCALING_METRIC) -> Dict[str, Any]:
    return {
        "rules": [
            {
                "seriesQuery": f'{metric}{{namespace!="",pod!=""}}',
                "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                "name": {"matches": f"^{metric}$", "as": metric},
                # A pod serving several APIs is as loaded as its busiest one.
                "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
            }
        ]
    }


def keda_scaled_object(plan: Plan) -> Dict[str, Any]:
    query = f'sum(max by (pod) ({plan.metric}{{namespace="{plan.namespace}",pod=~"{plan.name}-.*"}}))'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(plan),
        "spec": {
            "scaleTargetRef": {"name": plan.name},
            "minReplicaCount": plan.min_replicas,
            "maxReplicaCount": plan.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": plan.prometheus_url,
                        "query": query,
                        "threshold": _quantity(plan.target),
                    },
                }
            ],
        },
    }


# --- helpers ---------------------------------------------------------------------------------------


def _probe(path: str, period: int, timeout: int, failures: int) -> Dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _metadata(plan: Plan, annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    metadata: Dict[str, Any] = {"name": plan.name, "namespace": plan.namespace, "labels": plan.labels}
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _checkov_skips(plan: Plan) -> Dict[str, str]:
    """Checks that do not apply, each with its reason, where checkov and a reader both see them."""
    if plan.image_pinned:
        return {
            "checkov.io/skip1": "CKV_K8S_15=the image is pinned by digest, so IfNotPresent never runs a stale image"
        }
    return {
        "checkov.io/skip1": "CKV_K8S_43=the image is referenced by tag as given; pass --image NAME@sha256:... to pin it"
    }


def _quantity(value: float) -> str:
    """A Kubernetes quantity: "4" for 4.0, "1500m" for 1.5."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def _check_name(value: str, flag: str) -> None:
    if not _NAME.match(value):
        raise ValueError(f"{flag} must be a DNS label (lowercase letters, digits and '-', at most 63), got {value!r}")


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.strip().splitlines())


_NAMESPACE_NOTE = """
The pods meet the "restricted" Pod Security Standard (non-root, no privilege escalation, no capabilities,
RuntimeDefault seccomp), so the namespace enforces it.
"""

_DEPLOYMENT_NOTE = """
Probes: startupProbe waits for every worker to load its model (readiness path) and holds the other probes back
until then; readinessProbe takes the pod out of the Service while it is not ready (workers restarting,
draining); livenessProbe restarts the container only if its HTTP server stops answering (/livez).
Shutdown: preStop waits for the endpoint removal to spread, then SIGTERM makes the server stop accepting and
finish its in-flight requests within shutdown_timeout; terminationGracePeriodSeconds ({grace} s) covers both.
"""

_SERVICE_NOTE = "A cluster-internal address for the pods; put an Ingress or Gateway in front for outside traffic."

_PDB_NOTE = "Voluntary disruptions (node drains, upgrades) take down at most one pod at a time."

_NETWORK_NOTE = "Only the server's port is open to other pods (clients, Prometheus); nothing else reaches the pods."

_HPA_NOTE = """
Scales on litserve_requests_in_flight_per_worker: requests waiting or running per worker, exact over all API
processes of a pod. The target is the load one worker handles without queueing (its max_batch_size).
Needs Prometheus scraping the pods (see the Deployment's annotations) and the Prometheus Adapter rule in
autoscaling/prometheus-adapter-rules.yaml. Slow scale-down keeps warm pods through short lulls.
"""

_LLM_HPA_NOTE = """
Scales on litserve_llm_requests_waiting: requests with the pod's LLM workers that are not generating yet
(the engine admits all its KV cache and max_running_requests hold, so a queue means the pod is full). The
target is the average queue per pod. Needs Prometheus scraping the pods (see the Deployment's annotations)
and the Prometheus Adapter rule in autoscaling/prometheus-adapter-rules.yaml.
"""

_ADAPTER_NOTE = """
Prometheus Adapter rule that serves {metric} to the HPA as a per-pod custom
metric. Not a Kubernetes object: add it to the adapter's config file (--config), or to the
prometheus-adapter Helm chart's values under rules.custom. Check it with
  kubectl get --raw "/apis/custom.metrics.k8s.io/v1beta1/namespaces/NS/pods/*/METRIC"
where NS is the namespace and METRIC {metric}.
"""

_KEDA_NOTE = """
The alternative to hpa.yaml and the Prometheus Adapter: KEDA queries Prometheus itself and manages an HPA.
Apply this *instead of* hpa.yaml (two autoscalers on one Deployment fight), after installing KEDA.
"""
