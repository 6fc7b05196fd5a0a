"""Failure handling, sans-IO: how the proxy judges responses and endpoints and bounds its retries.

Owns the response classifiers (``classify``), retry and requeue budgets and backoffs (``retry``),
failure accrual per endpoint (``accrual``) and the endpoint record the balancer kernel's slots
stand for (``endpoint``). Time and random draws are arguments, so every rule is tested with an
injected clock.

May import: ``errors``, ``_impl``. Never trio, never ``config``.
"""
