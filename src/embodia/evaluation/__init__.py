"""Evaluation: closed-loop rollouts, embodied QA, depth quality and public benchmarks.

Every evaluation writes ``results.json`` (the numbers plus the whole protocol and the checkpoint's
weight hash) and ``report.md`` with its figures, so a number can always be traced to how it was
measured. Entry points: :func:`embodia.evaluation.rollout.run_rollouts`,
:func:`embodia.evaluation.qa.run_qa`, :func:`embodia.evaluation.depth.run_depth`,
:func:`embodia.evaluation.bench.run_bench`.
"""
