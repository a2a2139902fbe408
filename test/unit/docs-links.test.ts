// The documentation lives in the repository: the README points to each document, every
// relative link in the docs resolves to a file of the repository, and nothing points
// outside it (a design file in a sibling folder of the checkout was once linked).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const DOCS = ['docs/architecture.md', 'docs/protocol.md', 'docs/operations.md'];
const PAGES = ['README.md', ...DOCS, 'examples/python/README.md', 'packaging/README.md'];

/** The repository's files (tracked, and new ones not ignored), relative to ROOT. */
function repositoryFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 })
    .split('\n')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)));
}

/** The targets of a Markdown page's links, without anchors; web addresses left out. */
function relativeLinks(text: string): string[] {
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!.replace(/#.*$/, '')).filter((l) => l !== '' && !/^[a-z]+:/i.test(l));
}

describe('docs: in the repository, linked from the README', () => {
  it('the README links architecture.md, protocol.md and operations.md, and they exist', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const doc of DOCS) {
      expect(existsSync(join(ROOT, doc)), doc).to.equal(true);
      expect(readme, `README links ${doc}`).to.include(`](${doc})`);
    }
  });

  it('every relative link of the docs names a file or folder inside the repository', () => {
    const broken: string[] = [];
    for (const page of PAGES.filter((p) => existsSync(join(ROOT, p)))) {
      for (const link of relativeLinks(readFileSync(join(ROOT, page), 'utf8'))) {
        const target = resolve(ROOT, dirname(page), link);
        const inside = !relative(ROOT, target).startsWith('..');
        if (!inside || !existsSync(target)) broken.push(`${page}: ${link}`);
      }
    }
    expect(broken).to.deep.equal([]);
  });

  it('no file of the repository points to the design folder outside it', () => {
    // Spelled in parts, so that this file, which names it, does not point there itself.
    const outside = ['..', 'shared'].join('/');
    const pointing = repositoryFiles().filter((f) => !/\.(png|jpg|gz|lock)$/.test(f) && readFileSync(join(ROOT, f), 'latin1').includes(outside));
    expect(pointing).to.deep.equal([]);
  });
});
