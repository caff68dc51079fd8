// Types for the codec packages, which ship none for these entry points.
declare module "@cornerstonejs/codec-openjpeg/decodewasmjs" {
  const factory: (options: { wasmBinary: Uint8Array }) => Promise<any>;
  export default factory;
}
declare module "@cornerstonejs/codec-charls/decodewasmjs" {
  const factory: (options: { wasmBinary: Uint8Array }) => Promise<any>;
  export default factory;
}
declare module "@cornerstonejs/codec-openjpeg/decodewasm" {
  const bytes: Uint8Array;
  export default bytes;
}
declare module "@cornerstonejs/codec-charls/decodewasm" {
  const bytes: Uint8Array;
  export default bytes;
}
declare module "jpeg-lossless-decoder-js" {
  export class Decoder {
    decode(buffer: ArrayBuffer, offset?: number, length?: number, numBytes?: number): ArrayBuffer;
    numComp: number;
  }
}
