// A set of domains with exact entries (`example.com`) and subdomain entries (`.example.com`, which matches
// `a.example.com` and `a.b.example.com` but not `example.com` itself: list both for both).
export class DomainSet {
  private readonly exact = new Set<string>();
  private readonly parents = new Set<string>();

  /** Entries are expected normalised (lower case, no trailing dot), as the config schema leaves them. */
  constructor(entries: Iterable<string>) {
    for (const entry of entries) {
      if (entry.startsWith('.')) this.parents.add(entry.slice(1));
      else this.exact.add(entry);
    }
  }

  get size(): number {
    return this.exact.size + this.parents.size;
  }

  /** `domain` must be normalised the same way (the address parser does). */
  has(domain: string): boolean {
    if (this.exact.has(domain)) return true;
    if (this.parents.size === 0) return false;
    for (let dot = domain.indexOf('.'); dot >= 0; dot = domain.indexOf('.', dot + 1)) {
      if (this.parents.has(domain.slice(dot + 1))) return true;
    }
    return false;
  }
}
