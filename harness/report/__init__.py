"""What a run leaves behind for people and CI: Allure results, packet captures, baselines, comparisons.

Everything here works on what the scenario runner recorded (`RunRecord`) and on the files a run
writes (`results.json`, `allure-results/`); none of it talks to a broker. Every text and byte
sequence that leaves the process goes through `harness.report.secrets` first.
"""
