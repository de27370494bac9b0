export type DocumentKind = 'pdf' | 'docx' | 'html' | 'markdown' | 'text' | 'image';

export interface Heading {
  /** Offset in the page text where the heading starts. */
  offset: number;
  text: string;
  level: number;
}

export interface ExtractedPage {
  /** 1-based page number for paged formats (PDF); null for formats without pages. */
  page: number | null;
  /** Normalized text: NFC, paragraphs separated by a blank line. */
  text: string;
  headings: Heading[];
}

export interface ExtractedDocument {
  kind: DocumentKind;
  mime: string;
  title: string | null;
  pages: ExtractedPage[];
  /** Pages whose text came from OCR. */
  ocrPages: number[];
  /**
   * Pages without a text layer that were not read because OCR is off (OCR_ENABLED=false):
   * they are kept without text. Absent in extractions stored before the flag existed.
   */
  pagesWithoutText?: number[];
  warnings: string[];
}

export type OcrFunction = (png: Buffer, page: number | null) => Promise<{ text: string; confidence: number }>;

export interface ExtractLimits {
  maxPages: number;
  /** Largest total size of the files inside an archive (DOCX), after inflating. */
  maxUnpackedBytes: number;
  /** Text beyond this is cut (with a warning): a 1 GB text file must not become 1 GB of chunks. */
  maxTextChars: number;
}

export const DEFAULT_LIMITS: ExtractLimits = { maxPages: 2000, maxUnpackedBytes: 200 * 1024 * 1024, maxTextChars: 20_000_000 };

export interface ExtractOptions {
  kind: DocumentKind;
  mime?: string;
  /** Reads a page image; null = OCR is off: such pages are listed in `pagesWithoutText` instead. */
  ocr: OcrFunction | null;
  /** Cancel: checked between pages; the extraction throws the abort reason. */
  signal?: AbortSignal;
  limits?: Partial<ExtractLimits>;
  onProgress?: (done: number, total: number) => void;
}
