"""For use without installing the package: ``taskgen --plugin my_families.register …`` (or
``TASKGEN_PLUGINS=my_families.register``) imports this module, which registers the family.

An installed package does not need this module: its entry point is found by itself. (``--plugin
my_families.softmax_regression:SoftmaxRegressionFamily`` does the same without a module like this one.)
"""

import taskgen

from my_families.softmax_regression import SoftmaxRegressionFamily

if SoftmaxRegressionFamily.name not in taskgen.family_names():  # installed: its entry point already provides it
    taskgen.register_family(SoftmaxRegressionFamily)
