import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "s3bp" / "__init__.py").read_text(), re.M).group(1)

PANDAS = ["pandas>=2.0", "pyarrow>=14", "feather-format>=0.4"]
EXCEL = ["openpyxl>=3.1"]
# moto's S3 backend and the few packages its server needs (moto[server] pulls every service's dependencies)
DEMO = ["moto[s3]>=5.0", "flask>=2.3", "flask-cors>=4"]
BENCH = ["waitress>=2.1"]
POLARS = ["polars>=1.0"]
NOTEBOOK = ["ipykernel>=6", "nbclient>=0.7", "nbformat>=5", "ipywidgets>=8"]  # the tests run a real notebook kernel
TEST = PANDAS + EXCEL + POLARS + DEMO + NOTEBOOK + ["pytest>=7", "pytest-timeout>=2", "pytest-xdist>=3", "hypothesis>=6", "waitress>=2.1"]
DOCS = ["sphinx>=7"]

setup(
    name="s3bp",
    version=VERSION,
    description="Save and load Python objects and pandas DataFrames to S3, with the local disk as a cache.",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="MIT",
    packages=find_packages(exclude=["tests*", "benchmarks*"]),
    package_data={"s3bp": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=["boto3>=1.28", "python-dateutil>=2.8", "PyYAML>=5.4", "pathspec>=0.10", "tqdm>=4.60", "filelock>=3.12; platform_system == 'Windows'"],
    extras_require={
        "pandas": PANDAS,
        "excel": EXCEL,
        "polars": POLARS,
        "demo": DEMO,
        "bench": PANDAS + DEMO + BENCH,
        "test": TEST,
        "docs": DOCS,
        "dev": TEST + BENCH + DOCS + ["ruff>=0.4", "mypy>=1.8"],
    },
    entry_points={"console_scripts": ["s3bp = s3bp.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Archiving :: Backup",
    ],
)
