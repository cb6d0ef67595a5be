// A metric label whose values form a closed set known at start-up. Anything else is reported as `other`,
// so no caller mistake and no attacker-controlled string can grow the number of series.

/** The value every unknown input is mapped to. */
export const OTHER = 'other';

/** Label values must be short, printable identifiers; this keeps free text out even of configured lists. */
const LABEL_VALUE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$/;

export class BoundedLabel {
  /** Every value this label can take, `other` included, in a stable order (for zero-initialisation). */
  readonly values: readonly string[];
  private readonly lookup: ReadonlyMap<string, string>;

  /**
   * @param known the allowed values; matching is case-insensitive and yields the spelling given here.
   *   Values that are not short identifiers are dropped (they would fold into `other` anyway).
   */
  constructor(known: Iterable<string>) {
    const lookup = new Map<string, string>();
    for (const v of known) {
      if (LABEL_VALUE.test(v) && !lookup.has(v.toLowerCase())) lookup.set(v.toLowerCase(), v);
    }
    lookup.set(OTHER, OTHER);
    this.lookup = lookup;
    this.values = [...new Set(lookup.values())];
  }

  /** The label value for an input: its canonical spelling when known, else `other`. */
  valueOf(input: string | undefined): string {
    if (input === undefined) return OTHER;
    return this.lookup.get(input.toLowerCase()) ?? OTHER;
  }
}
