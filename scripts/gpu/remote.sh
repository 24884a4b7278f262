#!/usr/bin/env bash
# Runs on the GPU machine (after scripts/gpu/prepare.sh here, carrying .gpu and .gl): installs the
# Vulkan loader, unpacks Node, the bundled app and the fixtures under /tmp/fpdm, then runs the given
# command with `node` on PATH, the app in $APP and the fixtures in $FPDM_FIXTURES.
#   bash scripts/gpu/remote.sh node '$APP/src/cli/run.mjs' backends
set -euo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
mkdir -p /tmp/fpdm/bin
[ -x /tmp/fpdm/bin/node ] || { xz -dc .gpu/node.xz > /tmp/fpdm/bin/node && chmod +x /tmp/fpdm/bin/node; }
[ -d /tmp/fpdm/app ] || xz -dc .gpu/app.tar.xz | tar -C /tmp/fpdm -xf -
# the fixtures: from .gpu/fixtures.tar.xz when carried, else the repository's own tests/fixtures
[ -e /tmp/fpdm/fixtures ] || { [ -f .gpu/fixtures.tar.xz ] && xz -dc .gpu/fixtures.tar.xz | tar -C /tmp/fpdm -xf -; } || true
[ -e /tmp/fpdm/fixtures ] || [ ! -d tests/fixtures ] || ln -sfn "$PWD/tests/fixtures" /tmp/fpdm/fixtures
# suites that find their fixtures beside their own module (tests/helpers.ts: ./fixtures, tests/vae/helpers.ts: ../fixtures/vae) find
# them from a bundled entry (app/tests/<suite>/) and from a shared chunk (app/chunks/)
[ ! -e /tmp/fpdm/fixtures ] || { mkdir -p /tmp/fpdm/app/tests /tmp/fpdm/app/chunks; ln -sfn /tmp/fpdm/fixtures /tmp/fpdm/app/tests/fixtures; ln -sfn /tmp/fpdm/fixtures /tmp/fpdm/app/fixtures; ln -sfn /tmp/fpdm/fixtures /tmp/fpdm/app/chunks/fixtures; }
export PATH=/tmp/fpdm/bin:$PATH APP=/tmp/fpdm/app FPDM_FIXTURES=/tmp/fpdm/fixtures
eval "$@"
