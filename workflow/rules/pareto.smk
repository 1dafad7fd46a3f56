# Pareto fronts of the task's two losses for the conditioned variants (COSMOS, seed 002), every other
# variant's trained models and every search training as points, the hypervolume per variant and seed (an
# extra metric row), the preference each COSMOS model is evaluated at, and the training cost per variant. docs/cosmos.md.
#
# Written against the variant layout (VARIANTS, SEEDS, SEARCHES, variant_method of common.smk):
# models under results/models/{variant}/seed{seed}/, search trainings under results/search/{variant}/gen{g}/c{c}/.
# A COSMOS model's front.csv and chosen r (hparams.json "preference") are written by its `train` job;
# `simulate` runs it at that r through CGCalculator.from_checkpoint. Input functions: common.smk.


rule pareto:
    """Fronts, hypervolume, chosen preferences, cost table and the figure (results/pareto/)."""
    input:
        unpack(pareto_inputs),
    output:
        fronts=report(
            result("pareto/fronts.csv"),
            category="Evaluation scheme",
            subcategory="Pareto fronts",
            caption="../report/pareto_fronts.rst",
        ),
        chosen=report(
            result("pareto/chosen_preference.csv"),
            category="Evaluation scheme",
            subcategory="Pareto fronts",
            caption="../report/pareto_chosen.rst",
        ),
        points=result("pareto/points.csv"),
        hypervolume=result("pareto/hypervolume.csv"),
        hv_summary=report(
            result("pareto/hypervolume_summary.csv"),
            category="Evaluation scheme",
            subcategory="Pareto fronts",
            caption="../report/pareto_hypervolume.rst",
        ),
        cost=report(
            result("pareto/cost.csv"),
            category="Evaluation scheme",
            subcategory="Pareto fronts",
            caption="../report/pareto_cost.rst",
        ),
        figure=report(
            result("pareto/front.png"),
            category="Evaluation scheme",
            subcategory="Pareto fronts",
            caption="../report/pareto_figure.rst",
        ),
        candidates=report(
            result("pareto/search_candidates.csv"),
            category="Evaluation scheme",
            subcategory="Pareto fronts",
            caption="../report/pareto_candidates.rst",
        ),
        note=result("pareto/summary.md"),
    log:
        log_path("pareto/pareto"),
    benchmark:
        bench_path("pareto/pareto")
    conda:
        "../../envs/train.yaml"
    params:
        models=pareto_models(),
        candidates=pareto_candidates(),
        artifact_records=pareto_artifact_records(),
        conditioned=CONDITIONED_VARIANTS,
        reference_point=PARETO_REFERENCE,
        task=TASK,
        training=TRAINING,
        code=code_hash("pareto.py"),
    script:
        "../scripts/pareto.py"
