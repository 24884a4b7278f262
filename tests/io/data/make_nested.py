"""Writes nested_ckpt.pt: a zip-format checkpoint shaped like a DiT/FPDM training checkpoint
({'model': state_dict, 'ema': state_dict, 'opt': optimizer state with int keys, 'args': Namespace}),
pickled exactly as torch.save does (protocol 2, persistent storage ids, _rebuild_tensor_v2) but
without needing PyTorch: stand-in classes carry torch's module and class names. Also writes
evil_global.pt (a zip checkpoint whose pickle calls os.system) and values.json (the tensors' values,
for the test to compare with). Run: python3 make_nested.py"""
import argparse, collections, io, json, pickle, struct, sys, types, zipfile

torch = types.ModuleType('torch'); torch_utils = types.ModuleType('torch._utils')
sys.modules['torch'] = torch; sys.modules['torch._utils'] = torch_utils

class FloatStorage:  # stand-in for torch.FloatStorage
    pass
FloatStorage.__module__ = 'torch'; torch.FloatStorage = FloatStorage

class LongStorage:
    pass
LongStorage.__module__ = 'torch'; torch.LongStorage = LongStorage

def _rebuild_tensor_v2(*a):
    raise RuntimeError('never called when writing')
_rebuild_tensor_v2.__module__ = 'torch._utils'; torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2

class Storage:
    def __init__(self, key, cls, fmt, values):
        self.key, self.cls, self.fmt, self.values = key, cls, fmt, values

class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)

storages = []
def tensor(values, size, stride=None, offset=0, fmt='f', cls=FloatStorage, storage=None):
    if storage is None:
        storage = Storage(str(len(storages)), cls, fmt, values)
        storages.append(storage)
    if stride is None:
        stride, s = [], 1
        for d in reversed(size):
            stride.insert(0, s); s *= d
    return Tensor(storage, offset, size, stride)

class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ('storage', obj.cls, obj.key, 'cpu', len(obj.values))
        return None

w = [0.5, -1.0, 2.0, 3.5, -0.25, 8.0]
base = tensor(w, [2, 3])
transposed = Tensor(base.args[0], 0, [3, 2], [1, 3])  # a non-contiguous view of the same storage
model = collections.OrderedDict([('linear.weight', base), ('linear.bias', tensor([1.0, -2.0], [2])),
                                 ('linear.weight_t', transposed)])
ema = collections.OrderedDict([('linear.weight', tensor([x * 2 for x in w], [2, 3])), ('linear.bias', tensor([0.0, 0.5], [2]))])
opt = {'state': {0: {'step': tensor([7], [], fmt='q', cls=LongStorage), 'exp_avg': tensor([0.1] * 6, [2, 3])}},
       'param_groups': [{'lr': 1e-4, 'betas': (0.9, 0.999), 'weight_decay': 0, 'params': [0, 1]}]}
args = argparse.Namespace(model='DiT-S/2', image_size=256, num_classes=1000, epochs=1400)
ckpt = {'model': model, 'ema': ema, 'opt': opt, 'args': args}

def write(path, obj):
    buf = io.BytesIO(); P(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', buf.getvalue())
        z.writestr('archive/byteorder', 'little')
        for s in storages:
            z.writestr(f'archive/data/{s.key}', struct.pack('<%d%s' % (len(s.values), s.fmt), *s.values))
        z.writestr('archive/version', '3\n')

write('nested_ckpt.pt', ckpt)
json.dump({'model.linear.weight': w, 'model.linear.weight_t': [w[0], w[3], w[1], w[4], w[2], w[5]],
           'ema.linear.weight': [x * 2 for x in w], 'opt.state.0.step': [7], 'args.model': 'DiT-S/2'},
          open('values.json', 'w'), indent=1)

class Evil:
    def __reduce__(self):
        import os
        return (os.system, ('echo this-must-never-run > /dev/null',))
storages.clear()
write('evil_global.pt', {'weight': tensor([1.0], [1]), 'x': Evil()})
