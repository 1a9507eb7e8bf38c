"""The architectures as runnable pipelines: what to start, what to read, when it is done."""

from __future__ import annotations

from vendlab.catalog import Catalog
from vendlab.config import Profile
from vendlab.jobs.streaming import start_view_job
from vendlab.store import base

ARCHS = ("kappa", "lambda")


class PipelineFailed(RuntimeError):
    pass


class KappaPipeline:
    """Kafka/log -> one Spark Structured Streaming job -> real-time view."""

    name = "kappa"
    latency_jobs = [base.KAPPA]
    exact_views = ["realtime"]  # the views that must equal validation and the manifest

    def __init__(self, spark, profile: Profile, catalog: Catalog, settings):
        self.spark, self.profile, self.catalog, self.settings = spark, profile, catalog, settings
        self.query = None

    def start(self) -> None:
        self.query = start_view_job(self.spark, self.profile, self.catalog, base.KAPPA)

    def check(self) -> None:
        if self.query is not None and not self.query.isActive and self.query.exception() is not None:
            raise PipelineFailed(f"kappa streaming query failed: {self.query.exception()}")

    def views(self, store) -> dict:
        return {"realtime": store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT)}

    def progress(self, store) -> str:
        items = sum(store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT).values())
        return f"kappa {items:,} items"

    def finish(self, drained: bool) -> None:
        pass

    def extra_summary(self, store) -> dict:
        return {}

    def stop(self) -> None:
        if self.query is not None and self.query.isActive:
            self.query.stop()


def make_pipeline(arch: str, spark, profile: Profile, catalog: Catalog, settings):
    if arch == "kappa":
        return KappaPipeline(spark, profile, catalog, settings)
    if arch == "lambda":
        from vendlab.lambda_arch import LambdaPipeline

        return LambdaPipeline(spark, profile, catalog, settings)
    raise ValueError(f"unknown arch {arch!r}: allowed are {', '.join(ARCHS)}")
