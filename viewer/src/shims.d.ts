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
declare module "dcmseal-jpeg12" {
  // @cornerstonejs/dicom-image-loader's dist/esm/codecs/jpeg.js (aliased in build.mjs: the package exports map
  // does not name it).
  export default class JpegImage {
    width: number;
    height: number;
    colorTransform: boolean;
    parse(data: Uint8Array): void;
    getData16(width: number, height: number): Uint16Array;
  }
}
