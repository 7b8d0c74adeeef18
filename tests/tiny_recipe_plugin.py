"""A face ConvNet recipe small enough for a test (two lineages of a few epochs on a tiny net),
registered through ``EMONETS_PLUGINS=tiny_recipe_plugin`` as a user's own recipe would be."""

from emonets.specialists.face_cnn.recipes import Lineage, Recipe, Step, register_recipe

NET = (("widths", (8, 16)), ("convs", (1, 1)), ("dropout", 0.0), ("head_dropout", 0.0), ("batch_size", 16),
       ("augment", False))
register_recipe(Recipe(name="tiny", version=1, tta="mirror", net=NET, lineages=(
    Lineage("a", seed=0, steps=(Step(2, 1e-2), Step(2, 5e-3, swa_epochs=1, swa_lr=1e-3))),
    Lineage("b", seed=5, steps=(Step(3, 1e-2),)),
)))
