# The claims table (issue 24): which of the seed papers' claims hold on this run's results. The task declares its
# claims (Task.claim_declarations, balancebench.claims); each names the result files it reads, which are this
# rule's inputs. Runs after the statistics and the Pareto stage. A task with no claims of its own (cg_benzene)
# gets a table that says so and links to the tasks whose tables check the seeds on their own ground
# (Task.claims_elsewhere). docs/statistics.md, "Seed claims". The inputs: claims_inputs (common.smk).


rule claims:
    """claims.csv, claims.md, claims.html under the results directory."""
    input:
        unpack(claims_inputs),
    output:
        csv=report(
            result("claims.csv"),
            category="Seed claims",
            caption="../report/claims.rst",
            labels={"table": "claims (CSV)"},
        ),
        md=result("claims.md"),
        html=report(
            result("claims.html"),
            category="Seed claims",
            caption="../report/claims.rst",
            labels={"table": "claims"},
        ),
    log:
        log_path("claims/claims"),
    benchmark:
        bench_path("claims/claims")
    conda:
        "../../envs/stats.yaml"
    params:
        results_dir=lambda wildcards, output: os.path.dirname(output.csv),
        task=TASK,
        elsewhere=list(TASK_OBJ.claims_elsewhere),
        base_dir=workflow.basedir,
        code=code_hash("claims.py", "pareto.py") + TASK_CODE,
    script:
        "../scripts/claims.py"
