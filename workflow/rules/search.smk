# Searches that select a variant's parameters (balancing.searches; docs/search.md): generations
# unrolled as rules (wildcard g), one training job per candidate, the algorithm state written after every
# ask and tell (checksummed JSON, no pickle), so a killed search resumes where it stopped. Outputs under results/search/{variant}/.

SEARCH_CODE = code_hash("search/space.py", "search/driver.py", "search/evaluate.py", "search/selection.py")


wildcard_constraints:
    g=r"\d+",
    c=r"\d+",


rule search_ask:
    """The candidates of generation g from the state told after g - 1 (pymoo ask; grid: its values)."""
    input:
        told_input,
    output:
        asked=result("search/{variant}/gen{g}/asked.json"),
        candidates=result("search/{variant}/gen{g}/candidates.json"),
    log:
        log_path("search/{variant}/gen{g}/ask"),
    conda:
        "../../envs/train.yaml"
    params:
        search=lambda wc: search_config(wc.variant),
        seed=lambda wc: search_seed(wc.variant),
        code=SEARCH_CODE,
    script:
        "../scripts/search_ask.py"


rule search_candidate:
    """One candidate: train it (search.training overrides), the task's evaluation for metric objectives, its objectives."""
    input:
        unpack(lambda wc: {**variant_artifacts(wc.variant), **search_evaluation_inputs(wc)}),
        candidates=rules.search_ask.output.candidates,
        dataset=TASK_DATASET,
    output:
        evaluation=result("search/{variant}/gen{g}/c{c}/evaluation.json"),
        status=result("search/{variant}/gen{g}/c{c}/status.json"),
        log=result("search/{variant}/gen{g}/c{c}/train_log.csv"),
    log:
        log_path("search/{variant}/gen{g}/c{c}"),
    benchmark:
        bench_path("search/{variant}/gen{g}/c{c}")
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        gpu=0,
        runtime=240,
    params:
        search=lambda wc: search_config(wc.variant),
        task=TASK,
        model=config["model"],
        training=TRAINING,
        method=lambda wc: variant_method(wc.variant),
        method_params=lambda wc: variant_params(wc.variant),
        seed=lambda wc: candidate_seed(search_seed(wc.variant)),  # shared by the searches compared (paired)
        evaluation_config=lambda wc: {k: config.get(k) for k in TASK_OBJ.evaluation_sections},
        checkpoint=lambda wc: result(f"checkpoints/search/{wc.variant}/gen{wc.g}/c{wc.c}.pt"),
        code=TRAIN_CODE + SEARCH_CODE,
    script:
        "../scripts/search_candidate.py"


rule search_tell:
    """Tell generation g's objectives to the algorithm (failed candidates infeasible, finite penalty)."""
    input:
        unpack(generation_outputs),
    output:
        told=result("search/{variant}/gen{g}/told.json"),
    log:
        log_path("search/{variant}/gen{g}/tell"),
    conda:
        "../../envs/train.yaml"
    params:
        search=lambda wc: search_config(wc.variant),
        code=SEARCH_CODE,
    script:
        "../scripts/search_tell.py"


rule search_select:
    """Every candidate, the Pareto set per generation, the front's progress, the cost, and the selection."""
    input:
        unpack(all_generations),
    output:
        selected=result("search/{variant}/selected.json"),
        candidates=report(
            result("search/{variant}/candidates.csv"),
            category="Training",
            subcategory="Searches",
            caption="../report/search.rst",
        ),
        pareto=result("search/{variant}/pareto.csv"),
        cost=result("search/{variant}/cost.json"),
        figure=report(
            result("search/{variant}/front.png"),
            category="Training",
            subcategory="Searches",
            caption="../report/search.rst",
        ),
    log:
        log_path("search/{variant}/select"),
    conda:
        "../../envs/train.yaml"
    params:
        search=lambda wc: search_config(wc.variant),
        method=lambda wc: variant_method(wc.variant),
        method_params=lambda wc: variant_params(wc.variant),
        training=TRAINING,
        code=SEARCH_CODE,
    script:
        "../scripts/search_select.py"
