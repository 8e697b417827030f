"""A model registry on MLflow: SQLite backend, versions, the ``champion`` alias, promote and roll back.

MLflow's file store is deprecated and its registry *stages* (Staging, Production) are deprecated
since MLflow 2.9; this uses a ``sqlite:///`` tracking and registry URI and *aliases*. Each model
version is a run whose artifacts are one service bundle (:func:`dlbook.deploy.runtime.write_bundle`)
and whose metrics are what it scored; the service serves the version that the alias ``champion``
points to. Promotion moves ``champion`` to the candidate and ``previous`` to the old champion, so
a rollback is one alias move. mlflow is imported only when a registry is opened.

Example:
    >>> should_promote({"drift_accuracy": 0.50, "clean_accuracy": 0.70},
    ...                {"drift_accuracy": 0.58, "clean_accuracy": 0.69}, tolerance=0.02).promote
    True
    >>> should_promote({"drift_accuracy": 0.50, "clean_accuracy": 0.70},
    ...                {"drift_accuracy": 0.58, "clean_accuracy": 0.66}, tolerance=0.02).reason
    "clean accuracy 0.6600 is more than 0.0200 below the champion's 0.7000"
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHAMPION, PREVIOUS = "champion", "previous"
BUNDLE_ARTIFACT = "bundle"


class RegistryError(RuntimeError):
    """A registry entry that is missing, or whose files are missing or unreadable; the message says which."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model version."""

    name: str
    version: str
    source: str  # the artifact URI of its bundle
    run_id: str
    metrics: dict


@dataclass(frozen=True)
class Decision:
    """The promotion rule's answer and why."""

    promote: bool
    reason: str


def should_promote(champion: dict, candidate: dict, tolerance: float = 0.01, min_gain: float = 0.0) -> Decision:
    """Promote only if the candidate wins on drifted data and loses at most ``tolerance`` on clean data.

    Args:
        champion, candidate: metrics with ``drift_accuracy`` and ``clean_accuracy`` (fractions in [0, 1]).
        tolerance: the largest clean-accuracy loss accepted (a fraction, e.g. 0.01 = 1 point).
        min_gain: the drift-accuracy gain required (0: any gain); set it above the noise of the evaluation.
    """
    if not 0 <= tolerance < 1 or not 0 <= min_gain < 1:
        raise ValueError(f"tolerance={tolerance}, min_gain={min_gain}: give fractions in [0, 1)")
    for who, m in (("champion", champion), ("candidate", candidate)):
        missing = {"drift_accuracy", "clean_accuracy"} - set(m)
        if missing:
            raise ValueError(f"the {who}'s metrics lack {sorted(missing)}; log both accuracies when registering")
    gain = candidate["drift_accuracy"] - champion["drift_accuracy"]
    if gain <= min_gain:
        return Decision(False, f"drift accuracy {candidate['drift_accuracy']:.4f} does not beat the champion's "
                               f"{champion['drift_accuracy']:.4f} by more than {min_gain:.4f}")
    if candidate["clean_accuracy"] < champion["clean_accuracy"] - tolerance:
        return Decision(False, f"clean accuracy {candidate['clean_accuracy']:.4f} is more than {tolerance:.4f} "
                               f"below the champion's {champion['clean_accuracy']:.4f}")
    return Decision(True, f"drift accuracy +{gain:.4f}, clean accuracy "
                          f"{candidate['clean_accuracy'] - champion['clean_accuracy']:+.4f} (tolerance {tolerance:.4f})")


class Registry:
    """A local MLflow registry for one model name, in ``root`` (``registry.db`` + ``artifacts/``).

    Args:
        root: the folder (created); the tracking and registry URI is ``sqlite:///<root>/registry.db``.
        name: the registered model's name.

    Example:
        >>> reg = Registry(tmp, "cifar10-cnn")                                # doctest: +SKIP
        >>> v1 = reg.register("bundles/v1", {"clean_accuracy": 0.7, "drift_accuracy": 0.5})  # doctest: +SKIP
        >>> reg.set_alias(CHAMPION, v1.version); reg.get(CHAMPION).version    # doctest: +SKIP
        '1'
    """

    def __init__(self, root: str | os.PathLike, name: str):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        for logger in ("mlflow", "alembic"):  # after the import, which sets mlflow's own level
            logging.getLogger(logger).setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."

        self.root, self.name = Path(root).resolve(), name
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{self.root / 'registry.db'}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (experiment.experiment_id if experiment else self.client.create_experiment(
            name, artifact_location=(self.root / "artifacts").as_uri()))
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)

    def register(self, bundle: str | os.PathLike, metrics: dict, tags: dict | None = None) -> ModelEntry:
        """Log a bundle folder and its metrics as a run and register it as the next version."""
        bundle = Path(bundle)
        if not (bundle / "meta.json").is_file():
            raise RegistryError(f"{bundle} is not a service bundle (no meta.json); write it with write_bundle()")
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.client.log_artifacts(run.info.run_id, str(bundle), BUNDLE_ARTIFACT)
        for key, value in metrics.items():
            self.client.log_metric(run.info.run_id, key, float(value))
        self.client.set_terminated(run.info.run_id)
        version = self.client.create_model_version(self.name, f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT}",
                                                   run_id=run.info.run_id, tags=tags)
        return self.get(version=version.version)

    def get(self, alias: str | None = None, version: str | None = None) -> ModelEntry:
        """The entry an alias points to, or a version; a missing one is a :class:`RegistryError`."""
        from mlflow.exceptions import MlflowException

        try:
            mv = (self.client.get_model_version_by_alias(self.name, alias) if alias is not None
                  else self.client.get_model_version(self.name, str(version)))
            metrics = dict(self.client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
        except MlflowException as exc:
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise RegistryError(f"model {self.name!r} has no {what} in {self.uri} ({exc.message}); "
                                "register a version and set the alias first") from exc
        return ModelEntry(self.name, str(mv.version), mv.source, mv.run_id or "", metrics)

    def aliases(self) -> dict[str, str]:
        """Alias -> version for this model."""
        return {a: str(v) for a, v in self.client.get_registered_model(self.name).aliases.items()}

    def set_alias(self, alias: str, version: str) -> None:
        self.get(version=version)  # a clear error for a version that does not exist
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def fetch(self, entry: ModelEntry, dest: str | os.PathLike) -> Path:
        """Copy an entry's bundle to ``dest/<version>`` and return that folder; missing files are a RegistryError."""
        import mlflow

        target = Path(dest) / entry.version
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=entry.source, dst_path=str(target),
                                                              tracking_uri=self.uri))
        except Exception as exc:  # MlflowException, OSError: the artifact store lost the files
            raise RegistryError(f"version {entry.version} of {self.name!r}: its bundle at {entry.source} cannot "
                                f"be read ({type(exc).__name__}: {exc})") from exc
        if not (folder / "meta.json").is_file():
            raise RegistryError(f"version {entry.version} of {self.name!r}: {entry.source} holds no meta.json")
        return folder

    def promote(self, version: str) -> None:
        """Point ``champion`` at ``version`` and ``previous`` at the old champion (if any)."""
        old = self.aliases().get(CHAMPION)
        self.set_alias(CHAMPION, version)
        if old is not None and old != str(version):
            self.set_alias(PREVIOUS, old)

    def rollback(self) -> str:
        """Point ``champion`` back at ``previous`` (and ``previous`` at the one rolled back); the version now served."""
        aliases = self.aliases()
        if PREVIOUS not in aliases:
            raise RegistryError(f"model {self.name!r} has no {PREVIOUS!r} alias: nothing was promoted, nothing to roll back to")
        self.set_alias(CHAMPION, aliases[PREVIOUS])
        self.set_alias(PREVIOUS, aliases[CHAMPION])
        return aliases[PREVIOUS]
