"""What a model may return: a tensor, or tuples / mappings of tensors; anything else, or NaN, is one clear error."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from avxai.engine import check_output
from avxai.scorers import ClassLogit
from avxai.scorers.base import as_tensor_output

LOGITS = torch.tensor([[0.1, 2.0]])


@pytest.mark.parametrize("output", [LOGITS, (LOGITS, None), [LOGITS, (LOGITS, LOGITS)], {"logits": LOGITS},
                                    OrderedDict(logits=LOGITS, hidden=(LOGITS,))])
def test_tensors_and_containers_of_tensors_pass(output):
    assert check_output(output) is output


@pytest.mark.parametrize("output, name", [("speech", "str"), (None, "NoneType"), ([1, 2], "list"),
                                          ({"logits": LOGITS, "n": 3}, "dict"), ((), "tuple")])
def test_anything_else_is_one_type_error(output, name):
    with pytest.raises(TypeError, match=f"the model returned {name}, not a tensor or a mapping .*output=KEY"):
        check_output(output)


def test_nan_is_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_output({"logits": torch.tensor([[float("nan"), 1.0]])})


def test_a_scorer_reads_the_one_tensor_of_a_mapping_and_asks_to_pick_among_several():
    assert torch.equal(ClassLogit(1)({"logits": LOGITS}), torch.tensor([2.0]))
    with pytest.raises(TypeError, match="tensors logits, embeddings from the model; pick the one"):
        as_tensor_output({"logits": LOGITS, "embeddings": LOGITS}, "ClassLogit")
