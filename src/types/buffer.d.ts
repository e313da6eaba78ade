// Node's Buffer has fast latin1 slice/write methods that @types/node does not declare.
// They map bytes 1:1 to string code units and are used for TID table keys.
export {};
declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string;
    latin1Write(s: string, offset: number, length: number): number;
  }
}
