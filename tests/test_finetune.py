from __future__ import annotations

import torch

from podium.config import PodiumConfig, merge
from podium.engine.finetune import head_parameter_names, prepare_epoch
from podium.engine.optim import create_optimizer, create_scheduler
from podium.models.factory import create_model


def cfg(*overrides: str) -> PodiumConfig:
    return merge(PodiumConfig(), ("model.name=test_resnet", "model.pretrained=none", *overrides))


def test_head_only_warmup_then_unfreeze() -> None:
    c = cfg("finetune.freeze_epochs=1")
    model = create_model(c.model, 3)
    head = head_parameter_names(model)
    assert head == {"fc.weight", "fc.bias"}
    prepare_epoch(model, 0, c.finetune, [])
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    prepare_epoch(model, 1, c.finetune, [])
    assert all(p.requires_grad for p in model.parameters())


def bn_stats_change(c: PodiumConfig, epoch: int) -> bool:
    model = create_model(c.model, 3).train()
    hooks = prepare_epoch(model, epoch, c.finetune, [])
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 3 + 1)
    for h in hooks:
        h.remove()
    return not torch.equal(before, bn.running_mean)


def test_batchnorm_modes() -> None:
    assert bn_stats_change(cfg("finetune.bn=train"), 0)
    assert not bn_stats_change(cfg("finetune.bn=eval"), 3)
    assert not bn_stats_change(cfg("finetune.bn=frozen_eval", "finetune.freeze_epochs=1"), 0)
    assert bn_stats_change(cfg("finetune.bn=frozen_eval", "finetune.freeze_epochs=1"), 1)


def test_frozen_eval_hooks_are_removed_after_the_frozen_epochs() -> None:
    c = cfg("finetune.bn=frozen_eval", "finetune.freeze_epochs=1")
    model = create_model(c.model, 3).train()
    hooks = prepare_epoch(model, 0, c.finetune, [])
    assert hooks
    assert prepare_epoch(model, 1, c.finetune, hooks) == []
    assert all(m.training for m in model.modules())


def test_discriminative_learning_rates_and_delayed_backbone_schedule() -> None:
    c = cfg("train.lr=0.01", "finetune.backbone_lr=0.1", "finetune.freeze_epochs=1", "train.epochs=3",
            "train.warmup_epochs=0.5")
    model = create_model(c.model, 3)
    opt = create_optimizer(model, c.train, c.finetune)
    head_ids = {id(p) for n, p in model.named_parameters() if n in head_parameter_names(model)}
    for g in opt.param_groups:
        is_head = any(id(p) in head_ids for p in g["params"])
        assert g["lr"] == (0.01 if is_head else 0.001)
        assert g["weight_decay"] == (0.0 if g["params"][0].ndim == 1 else c.train.weight_decay)
    sched = create_scheduler(opt, c.train, 10, model, c.finetune)
    lrs = []
    for _ in range(30):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    backbone = [i for i, g in enumerate(opt.param_groups) if not any(id(p) in head_ids for p in g["params"])]
    head = [i for i in range(len(opt.param_groups)) if i not in backbone]
    assert all(lrs[s][i] == 0 for s in range(10) for i in backbone)  # frozen epoch: backbone LR is zero
    assert lrs[5][head[0]] > 0.009  # the head warmed up within half an epoch
    assert max(lrs[s][backbone[0]] for s in range(10, 30)) > 0.0009  # the backbone gets its own warmup to its peak


def test_layer_decay_gives_smaller_rates_to_earlier_layers() -> None:
    c = cfg("train.lr=0.01", "finetune.layer_decay=0.5")
    model = create_model(c.model, 3)
    opt = create_optimizer(model, c.train, c.finetune)
    lrs = sorted({round(g["lr"], 8) for g in opt.param_groups})
    assert len(lrs) > 2 and lrs[-1] == 0.01 and lrs[0] < 0.01 * 0.5 ** 2


def test_heads() -> None:
    linear = create_model(cfg().model, 3)
    pooled = create_model(cfg("model.head=catavgmax").model, 3)
    dropped = create_model(cfg("model.head=dropout").model, 3)
    assert pooled.get_classifier().in_features == 2 * linear.get_classifier().in_features
    assert dropped.drop_rate == 0.25 and linear.drop_rate == 0.0


def test_from_scratch_is_neither_frozen_nor_slowed() -> None:
    from podium.config import FinetuneConfig
    from podium.engine.finetune import effective_finetune

    ft = FinetuneConfig(freeze_epochs=2, backbone_lr=0.3, layer_decay=0.7, bn="eval")
    assert effective_finetune(ft, "auto") == ft
    scratch = effective_finetune(ft, "none")
    assert (scratch.freeze_epochs, scratch.backbone_lr, scratch.layer_decay, scratch.bn) == (0, 1.0, 0.0, "train")
