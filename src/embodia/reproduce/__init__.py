"""``embodia reproduce``: the papers' ablations as recipes, run arm by arm, reported per claim
(see :mod:`embodia.reproduce.runner`)."""
