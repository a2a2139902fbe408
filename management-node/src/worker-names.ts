// Worker names: what a worker asks for in Hello (its config's name, by default its
// hostname), unique among connected workers so an operator can type it wherever a
// worker id goes. A name taken by another connected worker gets "-2", "-3", ...; a
// worker that reconnects gets back the name it had when it is free.

/** 1-63 of [A-Za-z0-9._-], like a DNS label with dots allowed. */
const NAME = /^[A-Za-z0-9._-]{1,63}$/;
const MAX_NAME = 63;

export const isValidName = (name: string): boolean => NAME.test(name);

/** nameFromHost makes a name of a hostname (an older worker sends no name): odd characters become "-". */
export function nameFromHost(hostname: string): string {
  return hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, MAX_NAME);
}

export class WorkerNames {
  /** The names of connected workers, and whose each is. */
  private readonly owners = new Map<string, string>();
  /** Per wanted name, the suffix to try first: a fleet of one hostname connects in linear time. */
  private readonly nextSuffix = new Map<string, number>();

  /**
   * claim gives a connecting worker the name it wants, else the one it had before if that is free,
   * else the wanted name with the first free suffix. Returns '' when it wants none.
   */
  claim(workerId: string, wanted: string, previous: string): string {
    if (!wanted) return '';
    const free = (n: string) => (this.owners.get(n) ?? workerId) === workerId;
    let name = wanted;
    if (!free(name)) {
      const k = suffixOf(previous);
      if (k !== undefined && suffixed(wanted, k) === previous && free(previous)) name = previous;
      else {
        let next = this.nextSuffix.get(wanted) ?? 2;
        while (!free((name = suffixed(wanted, next)))) next++;
        this.nextSuffix.set(wanted, next + 1);
      }
    }
    this.owners.set(name, workerId);
    return name;
  }

  /** release frees the name of a worker that disconnected; its suffix is the first tried again. */
  release(workerId: string, name: string): void {
    if (!name || this.owners.get(name) !== workerId) return;
    this.owners.delete(name);
    const k = suffixOf(name);
    const base = k === undefined ? undefined : name.slice(0, name.length - `-${k}`.length);
    if (base !== undefined && k! < (this.nextSuffix.get(base) ?? 2)) this.nextSuffix.set(base, k!);
  }
}

const suffixOf = (name: string): number | undefined => {
  const m = /-(\d{1,9})$/.exec(name);
  return m ? Number(m[1]) : undefined;
};

function suffixed(base: string, k: number): string {
  const tail = `-${k}`;
  return `${base.slice(0, MAX_NAME - tail.length)}${tail}`;
}
