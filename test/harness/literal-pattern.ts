// A string as a regular-expression pattern that matches exactly that string (file paths in expected messages).
export function literalPattern(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
