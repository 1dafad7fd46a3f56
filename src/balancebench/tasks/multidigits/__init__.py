"""The task ``multidigits``: two digits on one canvas, two classifications (the seeds' own ground). See task.py."""
