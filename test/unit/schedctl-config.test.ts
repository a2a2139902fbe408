import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../common/config.js';
import { resolveConfig } from '../../schedctl/src/config.js';

describe('schedctl config resolution', () => {
  let dir: string;
  let flagFile: string;
  let envFile: string;
  let etcFile: string;
  const missing = () => join(dir, 'missing.yaml');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'schedctl-config-'));
    flagFile = join(dir, 'flag.yaml');
    envFile = join(dir, 'env.yaml');
    etcFile = join(dir, 'etc.yaml');
    writeFileSync(flagFile, 'manager: flag.example:1\n');
    writeFileSync(envFile, 'manager: env.example:2\ntimeout: 3s\n');
    writeFileSync(etcFile, 'manager: etc.example:3\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prefers -c over $SCHED_CONFIG and the default file', () => {
    const c = resolveConfig({ config: flagFile }, { SCHED_CONFIG: envFile }, etcFile);
    expect(c).to.include({ manager: 'flag.example:1', source: flagFile, timeout: 10_000 });
  });

  it('uses $SCHED_CONFIG before the default file', () => {
    const c = resolveConfig({}, { SCHED_CONFIG: envFile }, etcFile);
    expect(c).to.include({ manager: 'env.example:2', source: envFile, timeout: 3000 });
  });

  it('reads $SCHEDCTL_CONFIG, the older name, when $SCHED_CONFIG is not set', () => {
    expect(resolveConfig({}, { SCHEDCTL_CONFIG: envFile }, etcFile)).to.include({ source: envFile });
    expect(resolveConfig({}, { SCHED_CONFIG: flagFile, SCHEDCTL_CONFIG: envFile }, etcFile)).to.include({ source: flagFile });
  });

  it('lets $SCHED_MANAGER override the file, and --manager override both', () => {
    expect(resolveConfig({}, { SCHED_CONFIG: envFile, SCHED_MANAGER: 'm.example:9' }, etcFile)).to.include({ manager: 'm.example:9', timeout: 3000 });
    expect(resolveConfig({ manager: 'f.example:8' }, { SCHED_MANAGER: 'm.example:9' }, missing())).to.include({ manager: 'f.example:8' });
    expect(() => resolveConfig({}, { SCHED_MANAGER: 'nonsense' }, missing())).to.throw(ConfigError, /^\$SCHED_MANAGER: expected host:port/);
  });

  it('refuses a timeout without a unit: 5 could be seconds or milliseconds', () => {
    const bare = join(dir, 'bare.yaml');
    writeFileSync(bare, 'timeout: 5\n');
    expect(() => resolveConfig({ config: bare }, {}, missing())).to.throw(ConfigError, /timeout: invalid duration "5": add a unit, e\.g\. 5s/);
  });

  it('uses the default file when it exists', () => {
    expect(resolveConfig({}, {}, etcFile)).to.include({ manager: 'etc.example:3', source: etcFile });
  });

  it('falls back to built-in defaults when no file exists', () => {
    const c = resolveConfig({}, { SCHED_CONFIG: '' }, missing());
    expect(c).to.deep.equal({ manager: '127.0.0.1:7070', timeout: 10_000, source: 'defaults' });
  });

  it('fails when a file named with -c or $SCHED_CONFIG is missing', () => {
    expect(() => resolveConfig({ config: missing() }, {}, etcFile)).to.throw(ConfigError, /no such file/);
    expect(() => resolveConfig({}, { SCHED_CONFIG: missing() }, etcFile)).to.throw(ConfigError, /missing\.yaml/);
  });

  it('rejects unknown keys and bad values, naming the file and key', () => {
    writeFileSync(flagFile, 'manager: 127.0.0.1:7070\nmanagers: x\n');
    expect(() => resolveConfig({ config: flagFile }, {})).to.throw(ConfigError, /flag\.yaml: unknown key managers/);
    writeFileSync(flagFile, 'manager: no-port\n');
    expect(() => resolveConfig({ config: flagFile }, {})).to.throw(ConfigError, /manager: expected host:port/);
    writeFileSync(flagFile, 'timeout: 0s\n');
    expect(() => resolveConfig({ config: flagFile }, {})).to.throw(ConfigError, /flag\.yaml: timeout: must be between 100ms and 1h, got 0s$/);
    writeFileSync(flagFile, 'timeout: 2h\n');
    expect(() => resolveConfig({ config: flagFile }, {})).to.throw(ConfigError, /timeout: must be between 100ms and 1h, got 2h$/);
    writeFileSync(flagFile, 'timeout: 1h\n');
    expect(resolveConfig({ config: flagFile }, {}).timeout).to.equal(3_600_000);
    writeFileSync(flagFile, 'timeout: soon\n');
    expect(() => resolveConfig({ config: flagFile }, {})).to.throw(ConfigError, /timeout/);
  });

  it('accepts an empty file as all defaults', () => {
    writeFileSync(flagFile, '# nothing set\n');
    expect(resolveConfig({ config: flagFile }, {})).to.include({ manager: '127.0.0.1:7070', timeout: 10_000 });
  });

  it('lets --manager override the file, and validates it', () => {
    expect(resolveConfig({ config: flagFile, manager: '10.0.0.1:9000' }, {})).to.include({ manager: '10.0.0.1:9000' });
    expect(() => resolveConfig({ manager: 'nonsense' }, {}, missing())).to.throw(ConfigError, /^--manager: expected host:port/);
  });

  it('parses the shipped schedctl.yaml', () => {
    const c = resolveConfig({ config: new URL('../../schedctl/schedctl.yaml', import.meta.url).pathname }, {});
    expect(c).to.include({ manager: '127.0.0.1:7070', timeout: 10_000 });
  });
});
