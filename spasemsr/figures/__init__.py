"""Paper figures and tables from result files (``spasemsr figures``), and the figure data they need (``--collect``).

``render`` draws only from files under the results folder; ``collect`` is the one place that runs the
shipped models, writing the small crops and re-scored points the figures read.
"""
