/**
 * The examples printed at the end of each command's --help, by command path (`fastpatch`, `apply`,
 * `gpt show`). Plain data that imports nothing: ../cli.ts loads it before any library module, so
 * an old Node.js still gets runtime.ts's one line.
 */

// Kept in one table rather than in each command's block so that a new command without an example
// shows up in test/cli/newcomer.test.ts (which reads every command's --help) instead of in review.
export const EXAMPLES: Record<string, string[]> = {
  fastpatch: [
    '# make a key, package an image, check it, write it',
    'fastpatch keygen --out release.key',
    'fastpatch generate --target os.img --key release.key --version 1.0.0 -o os-1.0.0.fpay',
    'fastpatch inspect os-1.0.0.fpay --pubkey release.key.pub',
    'fastpatch apply os-1.0.0.fpay --target slot.img --pubkey release.key.pub',
    '# a new A/B disk, and the first release into its slot USR-A',
    'fastpatch gpt create disk.img --size 8G',
    'fastpatch apply os-1.0.0.fpay --target disk.img --slot USR-A --pubkey release.key.pub',
    '# on a device: write the passive A/B slot and boot it next, once',
    'fastpatch update https://example.com/os-1.1.0.fpay --disk /dev/sda --pubkey release.key.pub',
    '# every command has its own examples',
    'fastpatch apply --help',
  ],
  release: [
    'fastpatch release init repo/ --key release.key',
    'fastpatch release add repo/ os-1.3.0.img --version 1.3.0 --key release.key',
    'fastpatch release promote repo/ --version 1.3.0 --to beta --key release.key',
    'fastpatch release list repo/',
  ],
  'release init': [
    'fastpatch release init repo/ --key release.key',
    '# channels of your own, lowest first; deltas from the last 5 releases',
    'fastpatch release init repo/ --key release.key --channels dev,canary,prod --keep-deltas 5',
  ],
  'release add': [
    '# full payload + deltas from the releases channels carried recently; alpha moves to 1.3.0',
    'fastpatch release add repo/ os-1.3.0.img --version 1.3.0 --key release.key',
  ],
  'release promote': [
    'fastpatch release promote repo/ --version 1.3.0 --to beta --key release.key',
    '# back to 1.2.0 on stable after a bad release (recorded as forced, with the reason)',
    "fastpatch release promote repo/ --version 1.2.0 --to stable --key release.key --force --reason '1.3.0 breaks NFS'",
  ],
  'release list': ['fastpatch release list repo/', 'fastpatch release list repo/ --json | jq .channels'],
  serve: [
    'fastpatch serve repo/ --listen 0.0.0.0:8080 --state /var/lib/fastpatch/server.sqlite',
    '# payloads from a CDN that mirrors repo/, Omaha from here',
    'fastpatch serve repo/ --base-url https://cdn.example.com/os/ --state server.sqlite',
  ],
  check: [
    '# SERVER= and GROUP= from /etc/fastpatch/update.conf',
    'fastpatch check --disk /dev/sda --pubkey release.key.pub',
    'fastpatch check --server http://updates:8080/v1/update/ --group beta --disk /dev/sda --pubkey release.key.pub --json',
  ],
  'release status': ['fastpatch release status repo/ --state /var/lib/fastpatch/server.sqlite'],
  rollout: [
    'fastpatch rollout show',
    'fastpatch rollout set stable --open 5 --max-in-progress 20',
    "fastpatch rollout pause stable --reason 'NFS mounts fail on 1.3.0'",
  ],
  'rollout show': ['fastpatch rollout show', 'fastpatch rollout show stable --json'],
  'rollout set': [
    '# canaries first: 5% of stable machines, 20 at a time, pause at 3 failures',
    'fastpatch rollout set stable --open 5 --max-in-progress 20 --failure-threshold 3',
    '# a group of its own on stable, for the machines with GROUP=stable-eu',
    'fastpatch rollout set stable-eu --channel stable --max-per-period 50 --period 1h',
  ],
  'rollout pause': ["fastpatch rollout pause stable --reason 'NFS mounts fail on 1.3.0'"],
  'rollout resume': ['fastpatch rollout resume stable'],
  'rollout clear-failure': ['fastpatch rollout clear-failure 4b8c2d5e6f708192a3b4c5d6e7f80912'],
  fleetlock: [
    'fastpatch fleetlock --listen 0.0.0.0:3333 --etcd http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379',
    '# a group of its own with 2 slots for the machines whose Zincati group is "workers"',
    'fastpatch fleetlock --etcd http://127.0.0.1:2379 --group workers=2',
  ],
  keygen: ['fastpatch keygen --out release.key          # writes release.key (secret) and release.key.pub'],
  generate: [
    '# a full payload',
    'fastpatch generate --target os-1.1.0.img --key release.key --version 1.1.0 -o os-1.1.0.fpay',
    '# a delta from the release devices run now',
    'fastpatch generate --target os-1.1.0.img --source os-1.0.0.img --source-version 1.0.0 --key release.key --version 1.1.0 -o os-1.0.0-to-1.1.0.fpay',
  ],
  inspect: [
    'fastpatch inspect os-1.1.0.fpay',
    '# also check the signature',
    'fastpatch inspect os-1.1.0.fpay --pubkey release.key.pub --json',
  ],
  verify: [
    'fastpatch verify os-1.1.0.fpay --pubkey release.key.pub',
    'fastpatch verify os-1.0.0-to-1.1.0.fpay --source os-1.0.0.img --pubkey release.key.pub',
  ],
  apply: [
    'fastpatch apply os-1.1.0.fpay --target slot.img --pubkey release.key.pub',
    'fastpatch apply https://example.com/os-1.1.0.fpay --target /dev/loop0 --pubkey release.key.pub --timeout 600',
    '# a delta, reading the running slot',
    'fastpatch apply os-1.0.0-to-1.1.0.fpay --source /dev/sda3 --target /dev/sda4 --pubkey release.key.pub',
    '# the first release into USR-A of a new disk (made by `fastpatch gpt create`)',
    'fastpatch apply os-1.0.0.fpay --target disk.img --slot USR-A --pubkey release.key.pub',
    '# after an interruption (Ctrl-C, a lost connection): keep what was written',
    'fastpatch apply os-1.1.0.fpay --target slot.img --pubkey release.key.pub --resume',
  ],
  hash: ['fastpatch hash os-1.1.0.img', 'fastpatch hash /dev/sda4 --size 512M      # the first 512 MiB, as a manifest of that size records it'],
  demo: ['fastpatch demo', 'fastpatch demo --keep --json'],
  update: [
    'fastpatch update https://example.com/os-1.1.0.fpay --disk /dev/sda --pubkey release.key.pub',
    '# a disk image file, then see which slot boots next',
    'fastpatch update os-1.1.0.fpay --disk disk.img --pubkey release.key.pub',
    'fastpatch gpt next disk.img',
    '# the first update of a disk installed by other means (apply --slot records the release)',
    'fastpatch update os-1.1.0.fpay --disk disk.img --pubkey release.key.pub --unknown-release allow',
    '# after an interruption: keep what the passive slot already holds',
    'fastpatch update https://example.com/os-1.1.0.fpay --disk /dev/sda --pubkey release.key.pub --resume',
  ],
  gpt: ['fastpatch gpt create disk.img --size 2G', 'fastpatch gpt show disk.img', 'fastpatch gpt create --help'],
  'gpt create': ['fastpatch gpt create disk.img --size 2G', 'fastpatch gpt create disk.img --size 2G --force   # replace an existing file'],
  'gpt repair': ['fastpatch gpt repair /dev/sda', 'fastpatch gpt repair disk.img --move-backup   # after copying an image onto a larger disk'],
  'gpt show': ['fastpatch gpt show /dev/sda', 'fastpatch gpt show disk.img --json'],
  'gpt set-next': ['fastpatch gpt set-next disk.img --slot USR-B', 'fastpatch gpt set-next /dev/sda --slot USR-B --running USR-A --tries 3'],
  'gpt mark-good': ['fastpatch gpt mark-good /dev/sda                # on the device, after a successful boot: marks the running slot', 'fastpatch gpt mark-good disk.img --slot USR-B'],
  'gpt rollback': ['fastpatch gpt rollback /dev/sda                  # the slot not running boots next', 'fastpatch gpt rollback disk.img --running USR-B'],
  'gpt next': ['fastpatch gpt next disk.img', 'fastpatch gpt next disk.img --model vboot --type chromeos-kernel'],
  'gpt boot': ['fastpatch gpt boot disk.img                       # GRUB boots the slot on trial, using one of its tries', 'fastpatch gpt boot disk.img --dry-run'],
  'gpt boot-next': ['fastpatch gpt boot disk.img   # boot-next is the old name of gpt boot'],
};
