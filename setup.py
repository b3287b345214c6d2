"""Only what setup.cfg cannot say: the drop-in files in nagios-conf/ travel inside the
package as ``escalator_handlers.dropin`` (``escalator show-config`` prints them), so a
plain ``pip install`` has them without a second copy in the source tree."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["escalator_handlers", "escalator_handlers.*"]) + ["escalator_handlers.dropin"],
    package_dir={"escalator_handlers.dropin": "nagios-conf"},
    package_data={"escalator_handlers.dropin": ["*.cfg", "*/*", "*/*/*"]},
)
