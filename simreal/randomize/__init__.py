"""Domain randomization: YAML specs bound to simulations as stacks of randomizers."""

from simreal.randomize.spec import RandomizationError, RandomizationSpec, Randomizer, json_schema, load_spec, parse_spec
from simreal.randomize.stack import RandomizationStack
from simreal.randomize.wrappers import RandomizedEnv, wrap

__all__ = ["RandomizationError", "RandomizationSpec", "Randomizer", "RandomizationStack", "RandomizedEnv", "json_schema",
           "load_spec", "parse_spec", "wrap"]
