// Stands in for the `react-style-singleton` package (used by Radix's dialogs
// through react-remove-scroll), which adds a <style> element at run time: the
// CSP `style-src 'self'` refuses that and logs a violation each time a dialog
// opens. This version, with the same exports and behaviour, applies the same
// CSS through a constructed stylesheet (document.adoptedStyleSheets), which is
// CSSOM and not subject to style-src. esbuild aliases the package to this file.
import { useEffect } from 'react';

function makeSheet(css) {
  if (typeof document === 'undefined' || typeof CSSStyleSheet === 'undefined' || !('adoptedStyleSheets' in document)) {
    return null;
  }
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    return sheet;
  } catch {
    return null;
  }
}

export const stylesheetSingleton = () => {
  let counter = 0;
  let sheet = null;
  return {
    add(style) {
      if (counter === 0 && (sheet = makeSheet(style))) {
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      }
      counter++;
    },
    remove() {
      counter--;
      if (!counter && sheet) {
        const gone = sheet;
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== gone);
        sheet = null;
      }
    },
  };
};

export const styleHookSingleton = () => {
  const sheet = stylesheetSingleton();
  return (styles, isDynamic) => {
    useEffect(() => {
      sheet.add(styles);
      return () => sheet.remove();
      // Same dependency as the original: re-applied only for dynamic styles.
      // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [styles && isDynamic]);
  };
};

export const styleSingleton = () => {
  const useStyle = styleHookSingleton();
  const Sheet = ({ styles, dynamic }) => {
    useStyle(styles, dynamic);
    return null;
  };
  return Sheet;
};
