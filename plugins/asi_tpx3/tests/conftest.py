import os
import sys

# make tests/_helpers importable regardless of the pytest import mode
sys.path.insert(0, os.path.dirname(__file__))
